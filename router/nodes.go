package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The nodes of a RabbitMQ cluster. HERALD_AMQP_URL may name several, so that Herald reaches
// the cluster while any one node answers: a comma-separated list of URLs
// (amqp://u:p@h1:5672/v,amqp://u:p@h2:5672/v) or one URL with several hosts, as libpq takes
// them (amqp://u:p@h1:5672,h2:5672,h3/v). Every connection — the topology's, the relay's and
// the workers' publishers, the workers' consumers (through watermill-amqp's AmqpConfig.Dial
// hook, which its ConnectionConfig passes to amqp091) and the poison queue's — tries the nodes
// in the order given and takes the first that answers; when that node goes, the connection drops
// and the reconnection finds the next. The nodes must share everything but their host and port
// (user, password, vhost, scheme, parameters): the AMQP handshake is the same for each, only the
// socket under it differs.

const (
	// nodeDialTimeout bounds the TCP connect to one node, so that a host that is gone without
	// refusing (powered off, partitioned) holds the next node back this long, not 30 s.
	nodeDialTimeout = 5 * time.Second
	// handshakeTimeout bounds TLS and the AMQP handshake once connected, as amqp091 does.
	handshakeTimeout = 30 * time.Second
)

// brokerNodes is an AMQP URL setting read as the nodes it names.
type brokerNodes struct {
	// uri is what amqp091 is handed: the first node's URL, with the scheme amqp when the nodes
	// speak TLS, since the dialer does the TLS handshake itself (amqp091 would take the first
	// node's host as every node's server name).
	uri   string
	addrs []string // host:port of each node, in the order given
	// first is the first node's URL as amqp091 reads it: its TLS files, read again at every
	// dial (a certificate renewed on disk is taken without a restart), and its
	// connection_timeout.
	first amqp091.URI
}

// timeouts are the TCP connect's and the handshakes' bounds for one node: connection_timeout
// (milliseconds) bounds both when the URL sets it, as amqp091 does.
func (n brokerNodes) timeouts() (connect, handshake time.Duration) {
	if n.first.ConnectionTimeout > 0 {
		t := time.Duration(n.first.ConnectionTimeout) * time.Millisecond
		return t, t
	}
	return nodeDialTimeout, handshakeTimeout
}

// ValidateAMQPURL reports what is wrong with raw as an AMQP URL setting: one node's URL or a
// cluster's (see brokerNodes). Its errors never quote the URL.
func ValidateAMQPURL(raw string) error {
	_, err := parseNodes(raw)
	return err
}

// parseNodes reads raw as one or more nodes' URLs. Its errors never quote the URL: it holds a
// password.
func parseNodes(raw string) (brokerNodes, error) {
	urls := splitNodeURLs(raw)
	var (
		n     brokerNodes
		first amqp091.URI
	)
	for i, u := range urls {
		uri, err := amqp091.ParseURI(u)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error quotes the URL
			}
			return brokerNodes{}, fmt.Errorf("node %d of %d: %w", i+1, len(urls), err)
		}
		n.addrs = append(n.addrs, net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)))
		if i == 0 {
			first = uri
			continue
		}
		if !sameButHost(first, uri) {
			return brokerNodes{}, fmt.Errorf("node %d of %d differs from the first in more than its host and port (user, password, vhost, scheme or parameters): the nodes of one cluster share them", i+1, len(urls))
		}
	}
	n.uri, n.first = urls[0], first
	if first.Scheme == "amqps" {
		// The scheme is case-insensitive (AMQPS:// is amqps://): cut it off whole.
		_, rest, _ := strings.Cut(urls[0], "://")
		n.uri = "amqp://" + rest
	}
	return n, nil
}

// hasScheme reports whether s starts with an AMQP scheme, in any case.
func hasScheme(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "amqp") || strings.EqualFold(scheme, "amqps"))
}

// splitNodeURLs cuts raw into one URL per node. A piece that does not start with a scheme
// continues the piece before it (a password may hold a comma), and a URL whose host holds
// commas is one URL per host.
func splitNodeURLs(raw string) []string {
	var whole []string
	for _, piece := range strings.Split(raw, ",") {
		trimmed := strings.TrimSpace(piece)
		if len(whole) == 0 || hasScheme(trimmed) {
			whole = append(whole, trimmed)
			continue
		}
		whole[len(whole)-1] += "," + piece
	}
	var out []string
	for _, u := range whole {
		out = append(out, expandHosts(u)...)
	}
	return out
}

// expandHosts turns scheme://userinfo@h1,h2/rest into one URL per host.
func expandHosts(u string) []string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return []string{u}
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	at := strings.LastIndex(authority, "@")
	userinfo, hosts := authority[:at+1], authority[at+1:]
	if !strings.Contains(hosts, ",") {
		return []string{u}
	}
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		out = append(out, scheme+"://"+userinfo+strings.TrimSpace(h)+tail)
	}
	return out
}

// sameButHost reports whether a and b differ at most in their host and port.
func sameButHost(a, b amqp091.URI) bool {
	return a.Scheme == b.Scheme && a.Username == b.Username && a.Password == b.Password && a.Vhost == b.Vhost &&
		a.CertFile == b.CertFile && a.CACertFile == b.CACertFile && a.KeyFile == b.KeyFile && a.ServerName == b.ServerName &&
		a.Heartbeat == b.Heartbeat && a.ConnectionTimeout == b.ConnectionTimeout && a.ChannelMax == b.ChannelMax &&
		strings.Join(a.AuthMechanism, ",") == strings.Join(b.AuthMechanism, ",")
}

// nodeTLS is the TLS configuration the URL's parameters ask for (cacertfile, certfile, keyfile,
// server_name_indication), as amqp091 would build it: a client certificate only when both
// certfile and keyfile are given. Without server_name_indication each node's certificate is
// checked against that node's own host.
func nodeTLS(uri amqp091.URI) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: uri.ServerName, MinVersion: tls.VersionTLS12}
	if uri.CACertFile != "" {
		pem, err := os.ReadFile(uri.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("read cacertfile: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	if uri.CertFile != "" && uri.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(uri.CertFile, uri.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read certfile and keyfile: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialer returns an amqp091 Dial hook that ignores the address amqp091 derived from uri and
// connects to the first node that answers, each through dialOne. Each call starts after the
// node the call before it handed out: a node that takes TCP but fails the AMQP handshake (or
// drops the connection soon after) is not chosen again and again — the next dial, by amqp091's
// caller or watermill-amqp's reconnection, goes on to the next node.
func (n brokerNodes) dialer(dialOne func(network, addr string) (net.Conn, error)) func(network, addr string) (net.Conn, error) {
	var (
		mu   sync.Mutex
		next int // the node the next call tries first
	)
	return func(network, _ string) (net.Conn, error) {
		mu.Lock()
		start := next
		mu.Unlock()
		var errs []error
		for i := range n.addrs {
			at := (start + i) % len(n.addrs)
			addr := n.addrs[at]
			conn, err := dialOne(network, addr)
			if err == nil && n.first.Scheme == "amqps" {
				conn, err = n.handshake(conn, addr)
			}
			if err == nil {
				mu.Lock()
				next = (at + 1) % len(n.addrs)
				mu.Unlock()
				return conn, nil
			}
			errs = append(errs, err)
		}
		if len(errs) == 1 {
			return nil, errs[0]
		}
		return nil, fmt.Errorf("no RabbitMQ node answered: %w", errors.Join(errs...))
	}
}

// handshake runs TLS over conn to the node at addr, checking its certificate against its own
// host unless the URL named a server. The TLS files are read for each handshake.
func (n brokerNodes) handshake(conn net.Conn, addr string) (net.Conn, error) {
	cfg, err := nodeTLS(n.first)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	client := tls.Client(conn, cfg)
	if err := client.Handshake(); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	return client, nil
}

// nodeDialer connects to one node within connect, or until ctx ends, leaving handshake for TLS
// and AMQP's handshake (amqp091 clears the deadline once the connection is open).
func nodeDialer(ctx context.Context, connect, handshake time.Duration) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{Timeout: connect}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := conn.SetDeadline(time.Now().Add(handshake)); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return conn, nil
	}
}

// amqpDialConfig returns the URL and configuration to hand amqp091.DialConfig (or
// watermill-amqp's ConnectionConfig) so that a connection named name reaches the first of c's
// nodes that answers. dialOne connects to one node; nil means within the URL's
// connection_timeout, or nodeDialTimeout and handshakeTimeout.
func (c AMQPConfig) amqpDialConfig(name string, dialOne func(network, addr string) (net.Conn, error)) (string, amqp091.Config, int, error) {
	nodes, err := parseNodes(c.URL)
	if err != nil {
		return "", amqp091.Config{}, 0, fmt.Errorf("AMQP URL: %w", err)
	}
	if dialOne == nil {
		connect, handshake := nodes.timeouts()
		dialOne = nodeDialer(context.Background(), connect, handshake)
	}
	props := amqp091.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	return nodes.uri, amqp091.Config{Properties: props, Dial: nodes.dialer(dialOne)}, len(nodes.addrs), nil
}

// dial connects to the first of c's nodes that answers, as a connection named name. A node
// that takes TCP but fails the AMQP handshake (a node starting or stopping, a listener that is
// not RabbitMQ) fails the whole of amqp091's dial; so the dial is tried once per node, each try
// starting at the node after the one the last try reached.
func (c AMQPConfig) dial(name string) (*amqp091.Connection, error) {
	return c.dialContext(context.Background(), name)
}

// dialContext is dial, given up when ctx ends: the socket of the node being dialled is closed
// then, which ends amqp091's handshake on it at once (amqp091 takes no context of its own).
func (c AMQPConfig) dialContext(ctx context.Context, name string) (*amqp091.Connection, error) {
	nodes, err := parseNodes(c.URL)
	if err != nil {
		return nil, fmt.Errorf("AMQP URL: %w", err)
	}
	connect, handshake := nodes.timeouts()
	dialOne := nodeDialer(ctx, connect, handshake)
	var (
		mu    sync.Mutex
		stops []func() bool
	)
	uri, cfg, n, err := c.amqpDialConfig(name, func(network, addr string) (net.Conn, error) {
		conn, err := dialOne(network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { _ = conn.Close() }))
		mu.Unlock()
		return conn, nil
	})
	if err != nil {
		return nil, err
	}
	conn, err := dialEach(uri, cfg, n)
	// From here on the sockets are amqp091's: ctx no longer closes them.
	mu.Lock()
	for _, stop := range stops {
		stop()
	}
	mu.Unlock()
	if ctx.Err() != nil {
		if err == nil {
			_ = conn.CloseDeadline(time.Now())
		}
		return nil, ctx.Err()
	}
	return conn, err
}

// dialEach runs amqp091.DialConfig up to nodes times, until one succeeds.
func dialEach(uri string, cfg amqp091.Config, nodes int) (*amqp091.Connection, error) {
	var errs []error
	for range max(1, nodes) {
		conn, err := amqp091.DialConfig(uri, cfg)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}
