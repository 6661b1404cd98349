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
