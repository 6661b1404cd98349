package heraldtest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// SilentListener listens on loopback and accepts every connection without ever answering: it reads
// and discards whatever it is sent and holds the connection open until the test ends. It stands
// for a server that takes TCP and then hangs (a collector, a broker node). It returns the address.
func SilentListener(t testing.TB) string {
	t.Helper()
	return listen(t, true)
}

// ClosingListener listens on loopback and closes every connection as soon as it accepts it: a
// server that takes TCP and then drops it. It returns the address.
func ClosingListener(t testing.TB) string {
	t.Helper()
	return listen(t, false)
}

// listen accepts connections on loopback until the test ends, holding each (reading it to the
// end) or closing it at once.
func listen(t testing.TB, hold bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !hold {
				_ = c.Close()
				continue
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}
