package heraldtest_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
)

// A silent listener takes the connection and what is written to it, and answers nothing; a
// closing one ends the connection at once.
func TestListeners(t *testing.T) {
	silent, err := net.Dial("tcp", heraldtest.SilentListener(t))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if _, err := silent.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("write to the silent listener: %v", err)
	}
	_ = silent.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := silent.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the silent listener answered %d bytes, %v; want nothing until the deadline", n, err)
	}

	closing, err := net.Dial("tcp", heraldtest.ClosingListener(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closing.Close()
	_ = closing.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := closing.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the closing listener's connection read %d bytes, %v; want it ended", n, err)
	}
}
