package deliverytest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Port is a loopback port that forwards to a sink while open and is closed outright while shut:
// a client gets "connection refused", as from a relay that is down, and the connections open
// through it are cut. It opens again on the same port number, as a relay that came back.
type Port struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener // nil while shut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewPort opens a port forwarding to target ("127.0.0.1:port"); it is shut when the test ends.
func NewPort(t testing.TB, target string) *Port {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("port: listen: %v", err)
	}
	p := &Port{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.Shut()
		p.wg.Wait()
	})
	return p
}

// Host returns "127.0.0.1".
func (p *Port) Host() string { h, _, _ := net.SplitHostPort(p.addr); return h }

// Port returns the port number, the same while shut and after Open.
func (p *Port) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Shut closes the port and cuts every connection through it.
func (p *Port) Shut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Open listens on the port again; the test fails if the port was taken meanwhile.
func (p *Port) Open() {
	p.t.Helper()
	p.mu.Lock()
	open := p.ln != nil
	p.mu.Unlock()
	if open {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("port: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// serve accepts on ln until it is closed.
func (p *Port) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			p.wg.Add(1)
			go p.forward(client)
		}
	}()
}

// forward pipes client to the target in both directions until either side or Shut ends it.
func (p *Port) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
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
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}
