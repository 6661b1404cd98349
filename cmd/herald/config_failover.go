package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/redact"
)

// failoverConfig holds each channel's secondary providers, tried in order after the primary (the
// --smtp-* or --sms-* settings) fails, and their circuit breakers.
type failoverConfig struct {
	SMTPURLs string
	SMSURLs  string
	Breaker  delivery.BreakerConfig
	// Publish is how often a worker writes its breakers' state to the database for `herald
	// providers status`; a change of state is written at once.
	Publish time.Duration
}

// register binds the failover settings to the command's flags.
func (c *failoverConfig) register(s *settings) {
	s.URLList(&c.SMTPURLs, "smtp-failover-urls", "HERALD_SMTP_FAILOVER_URLS",
		"secondary SMTP relays, comma-separated, tried in order when the primary fails transiently: smtp://USER:PASSWORD@HOST:PORT?tls=starttls&from=ADDR&name=NAME (smtps:// for implicit TLS; other keys come from the --smtp-* settings, but the credentials; default names smtp-2, smtp-3, …)")
	s.URLList(&c.SMSURLs, "sms-failover-urls", "HERALD_SMS_FAILOVER_URLS",
		"secondary SMS gateways, comma-separated, tried in order when the primary fails transiently: https://ACCOUNT_SID:AUTH_TOKEN@HOST?from=NUMBER&name=NAME (unset keys come from the --sms-* settings; default names http-sms-2, http-sms-3, …)")
	s.Int(&c.Breaker.Failures, "breaker-failures", "HERALD_BREAKER_FAILURES", 5, "transient failures in a row that open a provider's circuit breaker (with failover URLs only)")
	s.Duration(&c.Breaker.Timeout, "breaker-timeout", "HERALD_BREAKER_TIMEOUT", 30*time.Second, "how long an open circuit breaker passes its provider over before a trial")
	s.Duration(&c.Publish, "breaker-publish-interval", "HERALD_BREAKER_PUBLISH_INTERVAL", 10*time.Second, "how often a worker records its circuit breakers' state for herald providers status")
}

// validate checks the breaker settings. The URLs are checked when the providers are built, against
// the primary's settings they inherit from.
func (c failoverConfig) validate() error {
	var errs []error
	if c.Breaker.Failures < 1 {
		errs = append(errs, fmt.Errorf("--breaker-failures %d: want at least 1", c.Breaker.Failures))
	}
	if c.Breaker.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--breaker-timeout %s: want more than 0", c.Breaker.Timeout))
	}
	if c.Publish <= 0 {
		errs = append(errs, fmt.Errorf("--breaker-publish-interval %s: want more than 0", c.Publish))
	}
	return errors.Join(errs...)
}

// validateFailover checks the failover URLs of the channels that deliver through a real
// provider, before anything connects. Its errors name the setting and the URL's place in it,
// never the URL: it may carry a password.
func (c providerConfig) validateFailover() error {
	var errs []error
	for _, ch := range []herald.Channel{herald.ChannelEmail, herald.ChannelSMS} {
		flag, urls, primary := c.failoverURLs(ch)
		for i, raw := range urls {
			if _, err := c.secondary(ch, raw, fmt.Sprintf("%s-%d", primary, i+2), 1, gatewayConfig{}); err != nil {
				errs = append(errs, fmt.Errorf("%s: URL %d of %d: %w", flag, i+1, len(urls), err))
			}
		}
	}
	return errors.Join(errs...)
}

// failoverURLs returns the failover setting of channel ch, its URLs and the primary's name; no
// URLs when the channel delivers to the log.
func (c providerConfig) failoverURLs(ch herald.Channel) (flag string, urls []string, primary string) {
	switch {
	case ch == herald.ChannelEmail && c.Email == "smtp":
		return "--smtp-failover-urls", splitURLList(c.Failover.SMTPURLs), cmp.Or(c.SMTP.Name, "smtp")
	case ch == herald.ChannelSMS && c.SMS == "http":
		return "--sms-failover-urls", splitURLList(c.Failover.SMSURLs), cmp.Or(c.HTTP.Name, delivery.HTTPSMSName)
	}
	return "", nil, ""
}

// warnIgnoredFailover warns that channel ch, delivered to the log, has failover URLs that are
// not used.
func (c providerConfig) warnIgnoredFailover(ch herald.Channel, logger *slog.Logger) {
	flag, urls := "--smtp-failover-urls", c.Failover.SMTPURLs
	if ch == herald.ChannelSMS {
		flag, urls = "--sms-failover-urls", c.Failover.SMSURLs
	}
	if len(splitURLList(urls)) > 0 {
		logger.Warn(flag+" ignored: the channel is delivered to the log", "channel", string(ch))
	}
}

// failover returns the failover of channel ch from primary, its provider, through the
// secondaries its failover setting lists; nil when it lists none, or when the channel delivers
// to the log.
func (c providerConfig) failover(ch herald.Channel, primary delivery.Provider, concurrency int, gateway gatewayConfig, secrets *redact.Secrets) (*delivery.Failover, error) {
	flag, urls, _ := c.failoverURLs(ch)
	if len(urls) == 0 {
		return nil, nil
	}
	providers := []delivery.Provider{primary}
	for i, raw := range urls {
		// The setting's own secrets are masked too: a provider may quote what it refused.
		p, err := c.secondary(ch, raw, fmt.Sprintf("%s-%d", primary.Name(), i+2), concurrency, gateway)
		if err != nil {
			return nil, fmt.Errorf("%s: URL %d of %d: %w", flag, i+1, len(urls), secrets.Error(err))
		}
		providers = append(providers, delivery.Masked(p, secrets))
	}
	f, err := delivery.NewFailover(ch, c.Failover.Breaker, providers...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return f, nil
}

// secondary builds the secondary provider raw describes, with the primary's settings for what it
// does not say.
func (c providerConfig) secondary(ch herald.Channel, raw, name string, concurrency int, gateway gatewayConfig) (delivery.Provider, error) {
	if ch == herald.ChannelEmail {
		cfg, err := delivery.ParseSMTPURL(raw, c.SMTP, name)
		if err != nil {
			return nil, err
		}
		// One idle connection per sender, as the primary.
		cfg.MaxIdle = concurrency
		return delivery.NewSMTP(cfg)
	}
	base := c.HTTP
	// Status reports go where the primary's do. The API checks their signatures with the
	// primary's token (--sms-auth-token) only.
	base.StatusCallback = gateway.statusCallback()
	cfg, err := delivery.ParseSMSURL(raw, base, name)
	if err != nil {
		return nil, err
	}
	return delivery.NewHTTPSMS(cfg)
}

// addBreakers shows the failovers' breakers on /metrics and records them for `herald providers
// status`, as process.
func (cfg *processConfig) addBreakers(pr *process, process string, failovers []*delivery.Failover) {
	if len(failovers) == 0 {
		return
	}
	pr.reg.MustRegister(delivery.Metrics(failovers...))
	sources := make([]breakers.Source, len(failovers))
	for i, f := range failovers {
		sources[i] = f
	}
	store := breakers.New(pr.pool)
	interval := cfg.worker.Providers.Failover.Publish
	// Containers on the host's network share its name and are each pid 1: a suffix of this
	// start keeps their rows, and one's clean stop deleting its own, apart.
	process += "#" + rand.Text()[:6]
	pr.add("circuit breaker status", func(ctx context.Context) error {
		return store.Run(ctx, process, sources, interval, pr.logger)
	}, nil)
}
