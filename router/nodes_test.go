package router_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// Both ways of naming a cluster's nodes are taken; nodes that differ in more than host and port
// are refused, and no error quotes the password.
func TestAMQPURLNamesSeveralNodes(t *testing.T) {
	const secret = "s3cret-Pa55"
	cases := []struct {
		name, url string
		wantErr   string
	}{
		{"one node", "amqp://herald:" + secret + "@127.0.0.1:5672/v", ""},
		{"several URLs", "amqp://herald:" + secret + "@h1:5672/v,amqp://herald:" + secret + "@h2:5673/v", ""},
		{"several hosts", "amqp://herald:" + secret + "@h1:5672,h2:5673,h3/v", ""},
		{"a comma in the password", "amqp://herald:a,b@h1:5672/v,amqp://herald:a,b@h2:5672/v", ""},
		{"TLS nodes", "amqps://herald:" + secret + "@h1,h2/v", ""},
		{"another password", "amqp://herald:" + secret + "@h1/v,amqp://herald:other@h2/v", "differs from the first"},
		{"another vhost", "amqp://herald:" + secret + "@h1/v,amqp://herald:" + secret + "@h2/w", "differs from the first"},
		{"another scheme", "amqp://herald:" + secret + "@h1/v,amqps://herald:" + secret + "@h2/v", "differs from the first"},
		{"a bad port", "amqp://herald:" + secret + "@h1:5672,h2:x/v", "node 2 of 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := router.AMQPConfig{URL: tc.url, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate: %v, want an error saying %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("Validate's error prints the password: %v", err)
			}
		})
	}
}

// With the first node of the list gone (nothing listens on its port), every connection Herald
// makes — the topology's, the poison queue's — takes the next node that answers, in both forms of
// the setting.
func TestAMQPConnectsToTheFirstNodeThatAnswers(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	deadHost := "127.0.0.1:" + strconv.Itoa(dead)
	gone := *u
	gone.Host = deadHost
	hosts := *u
	hosts.Host = deadHost + "," + u.Host
	for _, tc := range []struct{ name, url string }{
		{"several URLs", gone.String() + "," + amqpURL},
		{"several hosts", strings.Replace(hosts.String(), "%2C", ",", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := router.AMQPConfig{URL: tc.url, QueueType: "classic", Prefetch: 1, PublishChannels: 1}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			topology := router.NewTopology(cfg, quietLogger())
			heraldtest.RunInBackground(t, "topology", topology.Run)
			ctx := context.Background()
			heraldtest.Eventually(t, 20*time.Second, "the topology to declare the queues through the second node", func() (bool, error) {
				err := topology.Ready(ctx)
				return err == nil, err
			})
			if depth := heraldtest.QueueDepth(t, amqpURL, router.QueuePoison); depth != 0 {
				t.Fatalf("poison queue holds %d messages, want an empty, declared queue", depth)
			}
			msgs, err := router.NewPoisonQueue(tc.url, nil).List(ctx)
			if err != nil {
				t.Fatalf("list the poison queue through the second node: %v", err)
			}
			if len(msgs) != 0 {
				t.Fatalf("poison queue lists %d messages, want none", len(msgs))
			}
		})
	}
}

// notRabbitMQ listens on loopback and takes every connection without speaking AMQP: it closes
// each at once, or, with hang, holds it open saying nothing. It stands for a node that takes TCP
// but fails the AMQP handshake (starting, stopping, or not RabbitMQ at all).
func notRabbitMQ(t *testing.T, hang bool) string {
	t.Helper()
	if hang {
		return heraldtest.SilentListener(t)
	}
	return heraldtest.ClosingListener(t)
}

// A first node that takes TCP but fails the AMQP handshake is passed over: the topology's
// connection (and the poison queue's) reaches the second node within a bounded time rather than
// choosing the first again forever. A hanging node is bounded by the URL's connection_timeout.
func TestAMQPPassesOverANodeThatFailsTheHandshake(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hang  bool
		query string
	}{
		{"closes", false, ""},
		{"hangs", true, "connection_timeout=1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *u
			bad.Host = notRabbitMQ(t, tc.hang)
			bad.RawQuery = tc.query
			good := *u
			good.RawQuery = tc.query
			nodes := bad.String() + "," + good.String()
			cfg := router.AMQPConfig{URL: nodes, QueueType: "classic", Prefetch: 1, PublishChannels: 1}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			topology := router.NewTopology(cfg, quietLogger())
			heraldtest.RunInBackground(t, "topology", topology.Run)
			ctx := context.Background()
			heraldtest.Eventually(t, 15*time.Second, "the topology to declare the queues through the second node", func() (bool, error) {
				err := topology.Ready(ctx)
				return err == nil, err
			})
			if tc.hang {
				return // the poison queue's dial gives each node its whole deadline to answer
			}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := router.NewPoisonQueue(nodes, nil).List(lctx); err != nil {
				t.Fatalf("list the poison queue through the second node: %v", err)
			}
		})
	}
}

// A single URL reads as it did before clusters: the scheme in any case, connection_timeout
// bounding each node, and TLS files read at dial time, not when the setting is checked.
func TestAMQPURLSingleNode(t *testing.T) {
	cases := []struct {
		name, url, wantURI string
		wantAddrs          []string
		connect, handshake time.Duration
	}{
		{"plain", "amqp://u:p@h:5672/v", "amqp://u:p@h:5672/v", []string{"h:5672"}, 5 * time.Second, 30 * time.Second},
		{"upper-case TLS", "AMQPS://u:p@h/v", "amqp://u:p@h/v", []string{"h:5671"}, 5 * time.Second, 30 * time.Second},
		{"upper-case nodes", "AMQP://u:p@h1/v,AMQP://u:p@h2/v", "AMQP://u:p@h1/v", []string{"h1:5672", "h2:5672"}, 5 * time.Second, 30 * time.Second},
		{"connection_timeout", "amqp://u:p@h/v?connection_timeout=1500", "amqp://u:p@h/v?connection_timeout=1500", []string{"h:5672"}, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"missing TLS files", "amqps://u:p@h/v?cacertfile=/nonexistent/ca.pem&certfile=/nonexistent/c.pem&keyfile=/nonexistent/k.pem", "amqp://u:p@h/v?cacertfile=/nonexistent/ca.pem&certfile=/nonexistent/c.pem&keyfile=/nonexistent/k.pem", []string{"h:5671"}, 5 * time.Second, 30 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := (router.AMQPConfig{URL: tc.url, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}).Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			uri, addrs, connect, handshake, err := router.NodesOf(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if uri != tc.wantURI || strings.Join(addrs, " ") != strings.Join(tc.wantAddrs, " ") || connect != tc.connect || handshake != tc.handshake {
				t.Errorf("read as %q %v (%s, %s), want %q %v (%s, %s)", uri, addrs, connect, handshake, tc.wantURI, tc.wantAddrs, tc.connect, tc.handshake)
			}
		})
	}
	// amqp091 presents a client certificate only when both certfile and keyfile are given; a
	// certfile alone is not an error.
	n, err := router.NodeTLSCertificates("amqps://u:p@h/v?certfile=/nonexistent/c.pem")
	if err != nil || n != 0 {
		t.Errorf("certfile without keyfile: %d certificates, %v; want none and no error", n, err)
	}
	if _, err := router.NodeTLSCertificates("amqps://u:p@h/v?cacertfile=/nonexistent/ca.pem"); err == nil {
		t.Error("a missing cacertfile read without error")
	}
}
