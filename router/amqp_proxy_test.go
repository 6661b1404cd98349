package router_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// amqpProxy forwards AMQP connections to RabbitMQ and reads the frames that cross it: it counts
// the publishes clients send and the nacks RabbitMQ sends back, and can withhold, from a moment
// on, what RabbitMQ sends. withhold keeps back everything RabbitMQ sends on its channels —
// confirms, and the answers to opening or closing a channel — while the connection itself goes
// on (channel 0: heartbeats, the connection's own close): to the client, a broker whose channels
// stopped answering. withholdAll keeps back everything but heartbeats, the connection's close
// among it: a broker that answers nothing, though the connection looks alive. A connection
// accepted while stallNew is set is held open and never answered, not even its handshake, as by a
// node whose process is frozen.
type amqpProxy struct {
	ln     net.Listener
	target string

	withhold    atomic.Bool
	withholdAll atomic.Bool
	stallNew    atomic.Bool
	publishes   atomic.Int64 // basic.publish frames from clients
	nacks       atomic.Int64 // basic.nack frames passed on to clients
	withheld    atomic.Int64 // frames RabbitMQ sent that were withheld
	accepted    atomic.Int64 // connections accepted

	mu    sync.Mutex
	conns []net.Conn
}

// newAMQPProxy starts a proxy to the RabbitMQ of amqpURL and returns it with the URL that
// reaches the same vhost through it.
func newAMQPProxy(t *testing.T, amqpURL string) (*amqpProxy, string) {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &amqpProxy{ln: ln, target: u.Host}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *amqpProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if p.stallNew.Load() {
			p.mu.Lock()
			p.conns = append(p.conns, client)
			p.mu.Unlock()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.pipe(server, client, true)
		go p.pipe(client, server, false)
	}
}

// cut closes every connection open through the proxy, as a network that drops them.
func (p *amqpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// AMQP 0-9-1 frames: type, channel, payload size, payload, frame end. A method frame's payload
// starts with its class and method ids.
const (
	frameMethod        = 1
	frameHeartbeat     = 8
	classBasic         = 60
	methodBasicPublish = 40
	methodBasicNack    = 120
)

// pipe copies frames from src to dst until either ends. fromClient's stream starts with the
// protocol header, which is not a frame.
func (p *amqpProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	r := bufio.NewReader(src)
	if fromClient {
		header := make([]byte, 8)
		if _, err := io.ReadFull(r, header); err != nil {
			return
		}
		if _, err := dst.Write(header); err != nil {
			return
		}
	}
	head := make([]byte, 7)
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(head[3:7])
		frame := make([]byte, 7+int(size)+1)
		copy(frame, head)
		if _, err := io.ReadFull(r, frame[7:]); err != nil {
			return
		}
		channel := binary.BigEndian.Uint16(head[1:3])
		var class, method uint16
		if head[0] == frameMethod && size >= 4 {
			class, method = binary.BigEndian.Uint16(frame[7:9]), binary.BigEndian.Uint16(frame[9:11])
		}
		if fromClient {
			if class == classBasic && method == methodBasicPublish {
				p.publishes.Add(1)
			}
		} else {
			if (p.withholdAll.Load() && head[0] != frameHeartbeat) || (channel != 0 && p.withhold.Load()) {
				p.withheld.Add(1)
				continue
			}
			if class == classBasic && method == methodBasicNack {
				p.nacks.Add(1)
			}
		}
		if _, err := dst.Write(frame); err != nil {
			return
		}
	}
}
