package e2e_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards TCP connections to a target and can be switched down, which cuts every
// connection through it and turns new ones away, and up again. It is how a test takes RabbitMQ
// away from one process while others keep it.
type tcpProxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

// newTCPProxy listens on a loopback port and forwards to target while up; it starts up or down
// as told, and is closed when the test ends.
func newTCPProxy(t *testing.T, target string, up bool) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &tcpProxy{target: target, ln: ln, up: up, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Down()
		p.wg.Wait()
	})
	return p
}

// Addr is the address clients connect to.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Up lets connections through again.
func (p *tcpProxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = true
}

// Down closes every connection through the proxy and refuses new ones until Up.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// forward pipes client to the target in both directions until either side or Down ends it.
func (p *tcpProxy) forward(client net.Conn) {
	defer p.wg.Done()
	if !p.isUp() {
		_ = client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
	p.untrack(client, server)
}

func (p *tcpProxy) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// track registers a connection pair, unless the proxy went down meanwhile.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}
