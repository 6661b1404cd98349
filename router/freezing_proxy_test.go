package router_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// freezingProxy forwards TCP connections to PostgreSQL and can freeze one of them: from then on
// it swallows what either side sends on it and keeps both sockets open, as a connection whose
// peer hangs, or a network that drops packets, looks to the other end. Other connections, and
// new ones, go on as before.
type freezingProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen map[int]*atomic.Bool // by the local port of the connection to PostgreSQL
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &freezingProxy{ln: ln, target: target, frozen: map[int]*atomic.Bool{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

func (p *freezingProxy) port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

func (p *freezingProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		frozen := new(atomic.Bool)
		p.mu.Lock()
		p.frozen[server.LocalAddr().(*net.TCPAddr).Port] = frozen
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go pipe(server, client, frozen)
		go pipe(client, server, frozen)
	}
}

// pipe copies from src to dst until src ends; once frozen, it reads and drops.
func pipe(dst, src net.Conn, frozen *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !frozen.Load() {
				_ = dst.Close()
			}
			return
		}
	}
}

// freeze freezes the connection whose session PostgreSQL sees coming from clientPort.
func (p *freezingProxy) freeze(t *testing.T, clientPort int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.frozen[clientPort]
	if !ok {
		t.Fatalf("proxy: no connection from port %d", clientPort)
	}
	f.Store(true)
}
