package delivery_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/delivery/deliverytest"
)

// BenchmarkFailover measures one send over loopback relays: straight to a healthy primary; past
// a dead primary (its port closed: a refused connection) and a silent one (it accepts and never
// greets, as a hung relay: the SMTP timeout, 500ms here), each with its breaker still closed and
// open.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name     string
		primary  string // up, closed, silent
		failures int
	}{
		{"primary-up", "up", 5},
		{"primary-refusing/breaker-closed", "closed", 1 << 30},
		{"primary-refusing/breaker-open", "closed", 1},
		{"primary-silent/breaker-closed", "silent", 1 << 30},
		{"primary-silent/breaker-open", "silent", 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			primary, secondary := deliverytest.NewSMTPSink(b), deliverytest.NewSMTPSink(b)
			// Both behind a forwarding port, so that the relays cost the same.
			port, secondaryPort := deliverytest.NewPort(b, primary.Addr()), deliverytest.NewPort(b, secondary.Addr())
			primaryPort := port.Port()
			switch tc.primary {
			case "closed":
				port.Shut()
			case "silent":
				primaryPort = silentPort(b)
			}
			p := newSMTP(b, primary, func(c *delivery.SMTPConfig) { c.Port, c.Timeout = primaryPort, 500*time.Millisecond })
			s := newSMTP(b, secondary, func(c *delivery.SMTPConfig) { c.Name, c.Port = "smtp-2", secondaryPort.Port() })
			f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: tc.failures, Timeout: time.Hour}, p, s)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, _, err := f.SendVia(ctx, email(fmt.Sprintf("ntf-%d", i), "bob@example.net")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// silentPort listens on a loopback port that accepts connections and never says a word.
func silentPort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	b.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}
