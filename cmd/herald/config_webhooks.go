package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/webhooks"
)

// webhookPolicyConfig says where webhooks may go: every command that registers an endpoint
// (the API, the CLI) and every process that posts to one checks URLs against it.
type webhookPolicyConfig struct {
	AllowPrivate bool
	AllowHTTP    bool
}

// register binds the policy settings to the command's flags.
func (c *webhookPolicyConfig) register(s *settings) {
	s.Bool(&c.AllowPrivate, "webhook-allow-private", "HERALD_WEBHOOK_ALLOW_PRIVATE", false,
		"let webhooks reach loopback, private, link-local and metadata addresses (development and tests only)")
	s.Bool(&c.AllowHTTP, "webhook-allow-http", "HERALD_WEBHOOK_ALLOW_HTTP", false,
		"let webhooks use plain http instead of https (development and tests only)")
}

// policy returns the settings as a webhooks.Policy.
func (c webhookPolicyConfig) policy() webhooks.Policy {
	return webhooks.Policy{AllowPrivate: c.AllowPrivate, AllowHTTP: c.AllowHTTP}
}

// webhookConfig is the webhook dispatcher's settings.
type webhookConfig struct {
	webhookPolicyConfig
	Schedule       string
	DisableAfter   time.Duration
	Lanes          int
	Timeout        time.Duration
	ConnectTimeout time.Duration
	Poll           time.Duration
	Lease          time.Duration
}

// register binds the dispatcher's settings to the command's flags.
func (c *webhookConfig) register(s *settings) {
	c.webhookPolicyConfig.register(s)
	s.String(&c.Schedule, "webhook-retry-schedule", "HERALD_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h",
		"waits before each retry of a failed webhook delivery, comma-separated; after the last it is given up")
	s.Duration(&c.DisableAfter, "webhook-disable-after", "HERALD_WEBHOOK_DISABLE_AFTER", 5*24*time.Hour,
		"disable an endpoint that has failed every delivery for this long")
	s.Int(&c.Lanes, "webhook-concurrency", "HERALD_WEBHOOK_CONCURRENCY", 8,
		"requests under way at once per endpoint (one notification's events always share one)")
	s.Duration(&c.Timeout, "webhook-timeout", "HERALD_WEBHOOK_TIMEOUT", 15*time.Second,
		"how long an endpoint may take to answer a webhook, connection included")
	s.Duration(&c.ConnectTimeout, "webhook-connect-timeout", "HERALD_WEBHOOK_CONNECT_TIMEOUT", 5*time.Second,
		"how long connecting to an endpoint may take")
	s.Duration(&c.Poll, "webhook-poll-interval", "HERALD_WEBHOOK_POLL_INTERVAL", 100*time.Millisecond,
		"how often a caught-up endpoint's delivery looks for new events")
	s.Duration(&c.Lease, "webhook-lease", "HERALD_WEBHOOK_LEASE", 15*time.Second,
		"how long an endpoint's delivery stays with a process that stopped renewing it (how soon another takes over)")
}

// schedule parses the retry schedule.
func (c webhookConfig) schedule() ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(c.Schedule, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--webhook-retry-schedule: %q is not a positive duration (e.g. 5s,5m,30m)", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// validate checks the dispatcher's settings.
func (c webhookConfig) validate() error {
	var errs []error
	if _, err := c.schedule(); err != nil {
		errs = append(errs, err)
	}
	if c.DisableAfter <= 0 {
		errs = append(errs, fmt.Errorf("--webhook-disable-after %s: want a positive duration", c.DisableAfter))
	}
	if c.Lanes < 1 {
		errs = append(errs, fmt.Errorf("--webhook-concurrency %d: want 1 or more", c.Lanes))
	}
	if c.Timeout <= 0 || c.ConnectTimeout <= 0 || c.Poll <= 0 || c.Lease < time.Second {
		errs = append(errs, errors.New("--webhook-timeout, --webhook-connect-timeout and --webhook-poll-interval must be positive, --webhook-lease at least 1s"))
	}
	return errors.Join(errs...)
}

// client returns the HTTP client webhooks are posted with.
func (c webhookConfig) client() *webhooks.Client {
	return webhooks.NewClient(c.policy(), webhooks.ClientOptions{Timeout: c.Timeout, ConnectTimeout: c.ConnectTimeout})
}

// dispatcherOwner names this process's dispatcher in the endpoints' leases.
func dispatcherOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), uuid.NewString()[:8])
}
