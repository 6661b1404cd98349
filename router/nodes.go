package router

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
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
	tls   *tls.Config
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
	n.uri = urls[0]
	if first.Scheme == "amqps" {
		cfg, err := nodeTLS(first)
		if err != nil {
			return brokerNodes{}, err
		}
		n.tls = cfg
		n.uri = "amqp" + strings.TrimPrefix(urls[0], "amqps")
	}
	return n, nil
}

// splitNodeURLs cuts raw into one URL per node. A piece that does not start with a scheme
// continues the piece before it (a password may hold a comma), and a URL whose host holds
// commas is one URL per host.
func splitNodeURLs(raw string) []string {
	var whole []string
	for _, piece := range strings.Split(raw, ",") {
		trimmed := strings.TrimSpace(piece)
		if len(whole) == 0 || strings.HasPrefix(trimmed, "amqp://") || strings.HasPrefix(trimmed, "amqps://") {
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
// server_name_indication), as amqp091 would build it. Without server_name_indication each node's
// certificate is checked against that node's own host.
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
	if uri.CertFile != "" || uri.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(uri.CertFile, uri.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read certfile and keyfile: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialer returns an amqp091 Dial hook that ignores the address amqp091 derived from uri and
// connects to the first node that answers, trying them in order, each through dialOne.
func (n brokerNodes) dialer(dialOne func(network, addr string) (net.Conn, error)) func(network, addr string) (net.Conn, error) {
	return func(network, _ string) (net.Conn, error) {
		var errs []error
		for _, addr := range n.addrs {
			conn, err := dialOne(network, addr)
			if err == nil && n.tls != nil {
				conn, err = n.handshake(conn, addr)
			}
			if err == nil {
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
// host unless the URL named a server.
func (n brokerNodes) handshake(conn net.Conn, addr string) (net.Conn, error) {
	cfg := n.tls.Clone()
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

// dialNode connects to one node, leaving handshakeTimeout for TLS and AMQP's handshake (amqp091
// clears the deadline once the connection is open).
func dialNode(network, addr string) (net.Conn, error) {
	conn, err := net.DialTimeout(network, addr, nodeDialTimeout)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// amqpDialConfig returns the URL and configuration to hand amqp091.DialConfig (or
// watermill-amqp's ConnectionConfig) so that a connection named name reaches the first of c's
// nodes that answers. dialOne connects to one node; nil means dialNode.
func (c AMQPConfig) amqpDialConfig(name string, dialOne func(network, addr string) (net.Conn, error)) (string, amqp091.Config, error) {
	nodes, err := parseNodes(c.URL)
	if err != nil {
		return "", amqp091.Config{}, fmt.Errorf("AMQP URL: %w", err)
	}
	if dialOne == nil {
		dialOne = dialNode
	}
	props := amqp091.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	return nodes.uri, amqp091.Config{Properties: props, Dial: nodes.dialer(dialOne)}, nil
}

// dial connects to the first of c's nodes that answers, as a connection named name.
func (c AMQPConfig) dial(name string) (*amqp091.Connection, error) {
	uri, cfg, err := c.amqpDialConfig(name, nil)
	if err != nil {
		return nil, err
	}
	return amqp091.DialConfig(uri, cfg)
}
