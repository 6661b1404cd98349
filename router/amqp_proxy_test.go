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
// the publishes clients send, the nacks RabbitMQ sends back and the channels clients hold open,
// and can withhold, from a moment on, what RabbitMQ sends or what a client sends.
//
// withhold keeps back everything RabbitMQ sends on its channels — confirms, and the answers to
// opening or closing a channel — while the connection itself goes on (channel 0: heartbeats, the
// connection's own close): to the client, a broker whose channels stopped answering.
// withholdNew does the same on the connections accepted while it is set, and only on those.
// withholdAll keeps back everything but heartbeats, the connection's close among it: a broker
// that answers nothing, though the connection looks alive. What is withheld is dropped. A
// connection accepted while stallNew is set is held open and never answered, not even its
// handshake, as by a node whose process is frozen.
//
// setAlarm(true) plays a RabbitMQ under a memory or disk alarm: it stops reading a connection as
// soon as the connection publishes. From a client's first publish on, the proxy holds back
// everything the client sends on that connection but heartbeats (RabbitMQ goes on sending its
// own, and answers nothing new); setAlarm(false) hands what it held to RabbitMQ, in order, as
// RabbitMQ reads a connection again once its alarm clears. A connection the client closes
// meanwhile takes what it held with it: RabbitMQ never sees those publishes.
//
// A rewrite set with rewriteFromServer is handed each frame RabbitMQ sends that is not withheld,
// and the client gets what it returns instead (nothing, when it returns nil): a RabbitMQ that
// answers otherwise on some channel (see nackOn).
type amqpProxy struct {
	ln     net.Listener
	target string

	withhold    atomic.Bool
	withholdNew atomic.Bool
	withholdAll atomic.Bool
	stallNew    atomic.Bool
	alarm       atomic.Bool
	rewrite     atomic.Pointer[frameRewrite]
	publishes   atomic.Int64 // basic.publish frames from clients
	nacks       atomic.Int64 // basic.nack frames passed on to clients
	withheld    atomic.Int64 // frames RabbitMQ sent that were withheld
	stalled     atomic.Int64 // connections that published during an alarm
	accepted    atomic.Int64 // connections accepted

	mu           sync.Mutex
	conns        []*proxiedConn
	stalledConns []net.Conn // accepted while stallNew was set
}

// proxiedConn is one client's connection through the proxy.
type proxiedConn struct {
	client, server net.Conn
	withhold       bool         // accepted while withholdNew was set
	held           atomic.Int64 // channels the client opened and RabbitMQ has not closed for it
	ended          atomic.Bool

	mu      sync.Mutex // orders what is written to the server
	stalled bool       // the client published during an alarm: what it sends is held back
	queued  [][]byte
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
			p.stalledConns = append(p.stalledConns, client)
			p.mu.Unlock()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxiedConn{client: client, server: server, withhold: p.withholdNew.Load()}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go p.fromServer(c)
		go p.fromClient(c)
	}
}

// cut closes every connection open through the proxy, as a network that drops them.
func (p *amqpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	for _, c := range p.stalledConns {
		_ = c.Close()
	}
}

// setAlarm starts or ends an alarm (see amqpProxy). Ending one hands RabbitMQ what the stalled
// connections held back.
func (p *amqpProxy) setAlarm(on bool) {
	p.alarm.Store(on)
	if on {
		return
	}
	p.mu.Lock()
	conns := append([]*proxiedConn(nil), p.conns...)
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		for _, frame := range c.queued {
			if _, err := c.server.Write(frame); err != nil {
				break
			}
		}
		c.queued, c.stalled = nil, false
		c.mu.Unlock()
	}
}

// frameRewrite returns the frame to hand on in place of frame, which RabbitMQ sent on channel of
// conn, or nil to drop it; class and method are set for a method frame.
type frameRewrite func(conn *proxiedConn, frame []byte, channel, class, method uint16) []byte

// rewriteFromServer makes the proxy hand each frame RabbitMQ sends to rewrite from now on.
func (p *amqpProxy) rewriteFromServer(rewrite frameRewrite) { p.rewrite.Store(&rewrite) }

// open returns how many connections are open through the proxy, and how many channels their
// clients hold open on them: opened, and not yet closed with RabbitMQ's answer.
func (p *amqpProxy) open() (conns, channels int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if !c.ended.Load() {
			conns++
			channels += c.held.Load()
		}
	}
	return conns, channels
}

// AMQP 0-9-1 frames: type, channel, payload size, payload, frame end. A method frame's payload
// starts with its class and method ids.
const (
	frameMethod         = 1
	frameHeartbeat      = 8
	classChannel        = 20
	methodChannelOpen   = 10
	methodChannelClose  = 40
	methodChannelCloseO = 41
	classBasic          = 60
	methodBasicPublish  = 40
	methodBasicAck      = 80
	methodBasicNack     = 120
)

// frameReader reads AMQP frames.
type frameReader struct {
	r    *bufio.Reader
	head [7]byte
}

// next returns the next frame whole, with its type, channel, and class and method ids when it
// is a method frame.
func (f *frameReader) next() (frame []byte, typ byte, channel, class, method uint16, err error) {
	if _, err := io.ReadFull(f.r, f.head[:]); err != nil {
		return nil, 0, 0, 0, 0, err
	}
	size := binary.BigEndian.Uint32(f.head[3:7])
	frame = make([]byte, 7+int(size)+1)
	copy(frame, f.head[:])
	if _, err := io.ReadFull(f.r, frame[7:]); err != nil {
		return nil, 0, 0, 0, 0, err
	}
	class, method = methodIDs(frame)
	return frame, frame[0], binary.BigEndian.Uint16(frame[1:3]), class, method, nil
}

// methodIDs returns the class and method ids of a method frame, and zeros for any other frame.
func methodIDs(frame []byte) (class, method uint16) {
	if frame[0] != frameMethod || len(frame) < 7+4+1 {
		return 0, 0
	}
	return binary.BigEndian.Uint16(frame[7:9]), binary.BigEndian.Uint16(frame[9:11])
}

// fromClient copies what c's client sends to RabbitMQ until either side ends; its stream starts
// with the protocol header, which is not a frame.
func (p *amqpProxy) fromClient(c *proxiedConn) {
	defer p.end(c)
	f := &frameReader{r: bufio.NewReader(c.client)}
	header := make([]byte, 8)
	if _, err := io.ReadFull(f.r, header); err != nil {
		return
	}
	if _, err := c.server.Write(header); err != nil {
		return
	}
	for {
		frame, typ, _, class, method, err := f.next()
		if err != nil {
			return
		}
		publish := class == classBasic && method == methodBasicPublish
		if publish {
			p.publishes.Add(1)
		}
		if class == classChannel && method == methodChannelOpen {
			c.held.Add(1)
		}
		c.mu.Lock()
		if publish && !c.stalled && p.alarm.Load() {
			c.stalled = true
			p.stalled.Add(1)
		}
		if c.stalled && typ != frameHeartbeat {
			c.queued = append(c.queued, frame)
			c.mu.Unlock()
			continue
		}
		_, err = c.server.Write(frame)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// fromServer copies what RabbitMQ sends to c's client until either side ends, withholding what
// the proxy is told to.
func (p *amqpProxy) fromServer(c *proxiedConn) {
	defer p.end(c)
	f := &frameReader{r: bufio.NewReader(c.server)}
	for {
		frame, typ, channel, class, method, err := f.next()
		if err != nil {
			return
		}
		if (p.withholdAll.Load() && typ != frameHeartbeat) || (channel != 0 && (p.withhold.Load() || c.withhold)) {
			p.withheld.Add(1)
			continue
		}
		if rewrite := p.rewrite.Load(); rewrite != nil {
			if frame = (*rewrite)(c, frame, channel, class, method); frame == nil {
				continue
			}
			class, method = methodIDs(frame)
		}
		switch {
		case class == classBasic && method == methodBasicNack:
			p.nacks.Add(1)
		case class == classChannel && (method == methodChannelClose || method == methodChannelCloseO):
			c.held.Add(-1)
		}
		if _, err := c.client.Write(frame); err != nil {
			return
		}
	}
}

// end closes both sides of c, which ends the copy the other way too.
func (p *amqpProxy) end(c *proxiedConn) {
	c.ended.Store(true)
	_ = c.client.Close()
	_ = c.server.Close()
}

// channelNacker is a rewrite (see amqpProxy) that makes RabbitMQ refuse every publish on one
// channel: from the first basic.ack it sees, it turns each ack RabbitMQ sends on that channel of
// that connection into a basic.nack, until the channel closes. Other channels go on as before.
// RabbitMQ has taken a message whose ack became a nack: a publish tried again may be in RabbitMQ
// twice.
type channelNacker struct {
	mu      sync.Mutex
	conn    *proxiedConn // nil until the first ack
	channel uint16
	nacks   int  // acks turned into nacks
	closed  bool // the channel closed, by either side
	acks    int  // acks passed on, on any other channel, after the first
}

func (n *channelNacker) rewrite(conn *proxiedConn, frame []byte, channel, class, method uint16) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	ack := class == classBasic && method == methodBasicAck
	if ack && n.conn == nil {
		n.conn, n.channel = conn, channel
	}
	ours := n.conn == conn && n.channel == channel && !n.closed
	switch {
	case ack && ours:
		// basic.ack and basic.nack carry the same fields but for requeue, a bit of the octet
		// that holds multiple: delivery-tag (uint64), then that octet.
		nack := append([]byte(nil), frame...)
		binary.BigEndian.PutUint16(nack[9:11], methodBasicNack)
		n.nacks++
		return nack
	case ack:
		n.acks++
	case ours && class == classChannel && (method == methodChannelClose || method == methodChannelCloseO):
		n.closed = true
	}
	return frame
}

// state returns how many acks were turned into nacks, whether the nacked channel closed, and how
// many acks other channels got since the first.
func (n *channelNacker) state() (nacks int, closed bool, acks int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nacks, n.closed, n.acks
}
