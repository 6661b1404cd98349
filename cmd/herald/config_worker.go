package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
)

// workerConfig is how a worker delivers: which channels, how many at once, how often it tries and
// how long it waits between tries, and through which providers.
type workerConfig struct {
	Channels        []string
	Concurrency     int
	HighConcurrency int
	MaxAttempts     int
	attemptConfig
	RetryInitial  time.Duration
	RetryMax      time.Duration
	RetryMultiply float64
	RetryJitter   float64
	Providers     providerConfig
	Rates         rateConfig
}

// register binds the worker's settings, its providers' among them, to the command's flags.
func (c *workerConfig) register(s *settings) {
	s.Strings(&c.Channels, "channels", "HERALD_WORKER_CHANNELS", []string{"email", "sms"}, "channels this worker delivers")
	s.Int(&c.Concurrency, "concurrency", "HERALD_WORKER_CONCURRENCY", 8, "notifications delivered at once per channel, in its normal lane and again in its low lane")
	s.Int(&c.HighConcurrency, "high-concurrency", "HERALD_WORKER_HIGH_CONCURRENCY", 4, "notifications delivered at once per channel in its high-priority lane, whose consumers wait for high-priority notifications only")
	s.Int(&c.MaxAttempts, "max-attempts", "HERALD_MAX_ATTEMPTS", 5, "delivery attempts before a notification fails")
	c.attemptConfig.register(s)
	s.Duration(&c.RetryInitial, "retry-initial-interval", "HERALD_RETRY_INITIAL_INTERVAL", time.Second, "delay before the second attempt")
	s.Duration(&c.RetryMax, "retry-max-interval", "HERALD_RETRY_MAX_INTERVAL", 30*time.Second, "longest delay between attempts")
	s.Float(&c.RetryMultiply, "retry-multiplier", "HERALD_RETRY_MULTIPLIER", 2, "factor the delay grows by after each attempt")
	s.Float(&c.RetryJitter, "retry-jitter", "HERALD_RETRY_JITTER", 0.2, "random spread of each delay, as a fraction of it")
	c.Providers.register(s)
	c.Rates.register(s)
}

// validate checks the worker's settings before anything connects, naming the flags at fault.
func (c workerConfig) validate() error {
	var errs []error
	if _, err := c.channels(); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want at least 1", c.Concurrency))
	}
	if c.HighConcurrency < 1 {
		errs = append(errs, fmt.Errorf("--high-concurrency %d: want at least 1", c.HighConcurrency))
	}
	if err := c.Rates.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("--max-attempts %d: want at least 1", c.MaxAttempts))
	}
	errs = append(errs, c.attemptConfig.validate())
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("--retry-initial-interval %s and --retry-max-interval %s: want 0 < initial ≤ max", c.RetryInitial, c.RetryMax))
	}
	if c.RetryMultiply < 1 {
		errs = append(errs, fmt.Errorf("--retry-multiplier %g: want at least 1", c.RetryMultiply))
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		errs = append(errs, fmt.Errorf("--retry-jitter %g: want 0 ≤ jitter < 1", c.RetryJitter))
	}
	errs = append(errs, c.Providers.Failover.validate(), c.Providers.validateFailover())
	return errors.Join(errs...)
}

// channels is --channels, parsed, each once.
func (c workerConfig) channels() ([]herald.Channel, error) {
	var out []herald.Channel
	seen := map[herald.Channel]bool{}
	for _, name := range c.Channels {
		ch, err := herald.ParseChannel(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("--channels: %s", herald.ErrorMessage(err))
		}
		if !seen[ch] {
			seen[ch] = true
			out = append(out, ch)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--channels: name at least one of email, sms")
	}
	return out, nil
}

// policy is what the deliverer needs to decide: how many attempts, and how long one may run.
func (c workerConfig) policy() handlers.Policy {
	return handlers.Policy{MaxAttempts: c.MaxAttempts, Lease: c.lease(), Timeout: c.Timeout}
}

// attemptConfig is how long a delivery attempt may run, and how long one without an outcome is
// presumed alive: the workers judge abandoned attempts by its lease, and so does a cancel (the
// API's and the CLI's), which must therefore read the same settings as the workers.
type attemptConfig struct {
	Timeout time.Duration
	Lease   time.Duration
}

// register binds the attempt's settings to the command's flags.
func (c *attemptConfig) register(s *settings) {
	s.Duration(&c.Timeout, "delivery-timeout", "HERALD_DELIVERY_TIMEOUT", 30*time.Second, "time limit of one delivery attempt")
	s.Duration(&c.Lease, "attempt-lease", "HERALD_ATTEMPT_LEASE", 0, "how long an attempt without an outcome is presumed alive before another worker takes over; 0: --delivery-timeout + 30s")
}

// validate checks the attempt's settings, naming the flags at fault.
func (c attemptConfig) validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--delivery-timeout %s: want more than 0", c.Timeout))
	}
	if c.Lease != 0 && c.Lease <= c.Timeout {
		errs = append(errs, fmt.Errorf("--attempt-lease %s: want more than --delivery-timeout %s, or a running attempt would be duplicated", c.Lease, c.Timeout))
	}
	return errors.Join(errs...)
}

// lease is an attempt's lease. An attempt still running after its timeout is cut off; the lease
// adds room for recording its outcome before anyone may presume it abandoned.
func (c attemptConfig) lease() time.Duration {
	if c.Lease == 0 {
		return c.Timeout + 30*time.Second
	}
	return c.Lease
}

// routerConfig is what the router needs to run the workers: channels, concurrency, retries.
func (c workerConfig) routerConfig() router.WorkerConfig {
	chans, _ := c.channels()
	return router.WorkerConfig{
		Channels:        chans,
		Concurrency:     c.Concurrency,
		HighConcurrency: c.HighConcurrency,
		Retry: router.RetryConfig{
			MaxRetries:      2 * c.MaxAttempts,
			InitialInterval: c.RetryInitial,
			MaxInterval:     c.RetryMax,
			Multiplier:      c.RetryMultiply,
			Jitter:          c.RetryJitter,
		},
		// Attempts in flight finish and record their outcome before the process exits.
		CloseTimeout: c.Timeout + 35*time.Second,
	}
}

// providerConfig says through what each channel delivers (a real provider, or the log) and how
// to reach it.
type providerConfig struct {
	Email string
	SMS   string
	SMTP  delivery.SMTPConfig
	HTTP  delivery.SMSConfig
	// Failover holds the secondary providers of each channel and their circuit breakers.
	Failover failoverConfig
}

// register binds the providers' settings to the command's flags.
func (c *providerConfig) register(s *settings) {
	s.String(&c.Email, "email-provider", "HERALD_EMAIL_PROVIDER", "log", "how email is delivered: smtp, or log (write it to the log)")
	s.String(&c.SMTP.Host, "smtp-host", "HERALD_SMTP_HOST", "127.0.0.1", "SMTP server host")
	s.Int(&c.SMTP.Port, "smtp-port", "HERALD_SMTP_PORT", 0, "SMTP server port; 0: 25 with --smtp-tls none, 587 with starttls or require, 465 with implicit")
	s.String(&c.SMTP.Username, "smtp-username", "HERALD_SMTP_USERNAME", "", "SMTP user; empty: no authentication")
	s.Secret(&c.SMTP.Password, "smtp-password", "HERALD_SMTP_PASSWORD", "SMTP password")
	s.String(&c.SMTP.From, "smtp-from", "HERALD_SMTP_FROM", "Herald <herald@localhost>", "sender address of emails")
	s.String(&c.SMTP.TLS, "smtp-tls", "HERALD_SMTP_TLS", "starttls", "SMTP TLS: none, starttls (when offered), require, or implicit")
	s.Duration(&c.SMTP.Timeout, "smtp-timeout", "HERALD_SMTP_TIMEOUT", 20*time.Second, "SMTP connection timeout")
	s.Duration(&c.SMTP.IdleTimeout, "smtp-idle-timeout", "HERALD_SMTP_IDLE_TIMEOUT", 30*time.Second, "how long an idle SMTP connection is kept for the next email")
	s.String(&c.SMTP.MessageIDDomain, "smtp-message-id-domain", "HERALD_SMTP_MESSAGE_ID_DOMAIN", "", "domain of Message-IDs; empty: the sender's domain")

	s.String(&c.SMS, "sms-provider", "HERALD_SMS_PROVIDER", "log", "how SMS is delivered: http (a Twilio-style gateway), or log")
	s.URL(&c.HTTP.URL, "sms-url", "HERALD_SMS_URL", "https://api.twilio.com", "base URL of the SMS gateway")
	s.String(&c.HTTP.AccountSID, "sms-account-sid", "HERALD_SMS_ACCOUNT_SID", "", "SMS gateway account id")
	s.String(&c.HTTP.From, "sms-from", "HERALD_SMS_FROM", "", "sender number of SMS, E.164")
	s.Duration(&c.HTTP.Timeout, "sms-timeout", "HERALD_SMS_TIMEOUT", 20*time.Second, "SMS gateway request timeout")
	c.Failover.register(s)
}

// build returns a provider for each channel, masking secrets in the errors they return: those
// errors are recorded in the log and shown to API clients. The SMS gateway's token and where
// its status reports go come from gateway. A channel with secondary providers gets a failover
// over all of them, returned in failovers too.
func (c providerConfig) build(channels []herald.Channel, concurrency int, gateway gatewayConfig, secrets *redact.Secrets, logger *slog.Logger) (map[herald.Channel]delivery.Provider, []*delivery.Failover, error) {
	out := map[herald.Channel]delivery.Provider{}
	var failovers []*delivery.Failover
	for _, ch := range channels {
		var (
			p   delivery.Provider
			err error
		)
		switch {
		case ch == herald.ChannelEmail && c.Email == "smtp":
			cfg := c.SMTP
			// One idle connection per sender: fewer would be dialled and closed every round.
			cfg.MaxIdle = concurrency
			p, err = delivery.NewSMTP(cfg)
		case ch == herald.ChannelSMS && c.SMS == "http":
			cfg := c.HTTP
			cfg.AuthToken, cfg.StatusCallback = gateway.AuthToken, gateway.statusCallback()
			p, err = delivery.NewHTTPSMS(cfg)
		case ch == herald.ChannelEmail && c.Email == "log", ch == herald.ChannelSMS && c.SMS == "log":
			p = delivery.NewLog(logger)
			c.warnIgnoredFailover(ch, logger)
		case ch == herald.ChannelEmail:
			err = fmt.Errorf("--email-provider %q: want smtp or log", c.Email)
		default:
			err = fmt.Errorf("--sms-provider %q: want http or log", c.SMS)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s provider: %w", ch, err)
		}
		p = delivery.Masked(p, secrets)
		f, err := c.failover(ch, p, concurrency, gateway, secrets)
		if err != nil {
			return nil, nil, err
		}
		if f != nil {
			p = f
			failovers = append(failovers, f)
		}
		out[ch] = p
	}
	return out, failovers, nil
}

// gatewayConfig is what the workers and the API share of the SMS gateway: its auth token, which
// the workers authenticate with and the API checks the gateway's signatures with, and the public
// URL the gateway reaches Herald's API at, where the workers ask it to post status reports.
type gatewayConfig struct {
	PublicURL string
	AuthToken string
}

// register binds the gateway's shared settings to the command's flags.
func (c *gatewayConfig) register(s *settings) {
	s.Secret(&c.AuthToken, "sms-auth-token", "HERALD_SMS_AUTH_TOKEN", "SMS gateway auth token; the API also checks the gateway's signed callbacks with it")
	s.URL(&c.PublicURL, "public-url", "HERALD_PUBLIC_URL", "", "base URL the SMS gateway reaches Herald's API at, e.g. https://herald.example.com: each SMS asks for its status reports there, and the API takes in the gateway's signed callbacks; empty: no SMS receipts")
}

// validate checks the public URL, when one is set.
func (c gatewayConfig) validate() error {
	if c.PublicURL == "" {
		return nil
	}
	if _, err := receipts.ParsePublicURL(c.PublicURL); err != nil {
		return fmt.Errorf("--public-url %w", err)
	}
	return nil
}

// statusCallback is the URL each SMS asks the gateway to post its status reports to; empty
// without a public URL.
func (c gatewayConfig) statusCallback() string {
	base, err := receipts.ParsePublicURL(c.PublicURL)
	if err != nil {
		return ""
	}
	return receipts.StatusCallbackURL(base)
}

// verifier returns what checks the gateway's callbacks, or nil and why there is none.
func (c gatewayConfig) verifier() (*receipts.Verifier, string) {
	switch {
	case c.PublicURL == "":
		return nil, "no --public-url"
	case c.AuthToken == "":
		return nil, "no --sms-auth-token"
	}
	v, err := receipts.NewVerifier(c.PublicURL, c.AuthToken)
	if err != nil {
		return nil, err.Error()
	}
	return v, ""
}
