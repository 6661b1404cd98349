package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/postgres"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
)

// Defaults point at services on this machine, so a developer needs no configuration.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/herald?sslmode=disable"
	defaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
)

type logConfig struct {
	Level  string
	Format string
	// secrets are the command's secret settings, masked in every record.
	secrets func() *redact.Secrets
}

func (c *logConfig) register(s *settings) {
	s.String(&c.Level, "log-level", "HERALD_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	s.String(&c.Format, "log-format", "HERALD_LOG_FORMAT", "text", "log format: text or json")
	c.secrets = s.secrets
}

// logger returns the command's logger. Every record passes through the masking of the command's
// secrets: drivers and libraries put connection strings in their errors.
func (c logConfig) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch c.Format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", c.Format)
	}
	var secrets *redact.Secrets
	if c.secrets != nil {
		secrets = c.secrets()
	}
	return slog.New(secrets.Handler(h)), nil
}

type dbConfig struct {
	URL        string
	MigrateURL string
	MaxConns   int
	Migrate    bool
}

func (c *dbConfig) register(s *settings, migrateFlag bool) {
	s.URL(&c.URL, "database-url", "HERALD_DATABASE_URL", defaultDatabaseURL, "PostgreSQL connection URL")
	s.Int(&c.MaxConns, "database-max-conns", "HERALD_DATABASE_MAX_CONNS", 20, "largest number of connections in this process's PostgreSQL pool (the relay and the projector each hold one more, for their consumer groups' locks)")
	if migrateFlag {
		s.Bool(&c.Migrate, "migrate", "HERALD_MIGRATE", false, "apply pending database migrations before starting")
		c.registerOwner(s)
	}
}

// registerOwner adds the owner's URL, for the commands that change the schema.
func (c *dbConfig) registerOwner(s *settings) {
	s.URL(&c.MigrateURL, "migrate-database-url", "HERALD_MIGRATE_DATABASE_URL", "",
		"PostgreSQL connection URL of the role that owns Herald's tables, for migrations; empty: --database-url")
}

// ownerURL is where migrations connect: the tables' owner. (Rebuilds run as the runtime role,
// through the functions migration 00007 lends it.)
func (c dbConfig) ownerURL() string { return cmp.Or(c.MigrateURL, c.URL) }

// runtimeRole is the role the services connect as: the user of --database-url.
func (c dbConfig) runtimeRole() (string, error) {
	cfg, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return "", fmt.Errorf("--database-url: %w", err)
	}
	return cfg.User, nil
}

// pool connects to PostgreSQL and checks the schema is current, applying the migrations first
// (as the owner) when asked to.
func (c dbConfig) pool(ctx context.Context, logger *slog.Logger) (*pgxpool.Pool, error) {
	if c.Migrate {
		if err := c.migrate(ctx, logger); err != nil {
			return nil, err
		}
	}
	pool, err := c.connect(ctx, logger, c.URL, false)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// migrate connects as the owner, creating the database if need be, applies the migrations and
// grants the runtime role what it needs.
func (c dbConfig) migrate(ctx context.Context, logger *slog.Logger) error {
	role, err := c.runtimeRole()
	if err != nil {
		return err
	}
	owner := c
	owner.MaxConns = 2
	pool, err := owner.connect(ctx, logger, c.ownerURL(), true)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrateUp(ctx, pool, role, logger)
}

// cliConnectTimeout bounds how long a command run by hand waits for PostgreSQL: it should fail
// with the reason, not wait for ever as a service does.
const cliConnectTimeout = 15 * time.Second

// cliPool is pool for a command run by hand: it gives up after cliConnectTimeout.
func (c dbConfig) cliPool(ctx context.Context, logger *slog.Logger) (*pgxpool.Pool, error) {
	cctx, cancel := context.WithTimeout(ctx, cliConnectTimeout)
	defer cancel()
	pool, err := c.pool(cctx, logger)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("PostgreSQL did not answer within %s (the warnings above say why): %w", cliConnectTimeout, err)
	}
	return pool, err
}

// connect connects to PostgreSQL at url, waiting for it while it is unreachable.
// With create, a database that does not exist is created.
func (c dbConfig) connect(ctx context.Context, logger *slog.Logger, url string, create bool) (*pgxpool.Pool, error) {
	source := "--database-url"
	if url == c.MigrateURL {
		source = "--migrate-database-url"
	}
	return postgres.Connect(ctx, url, postgres.Options{
		Source: source, MaxConns: c.MaxConns, Wait: true, CreateMissing: create, Logger: logger,
	})
}

type amqpConfig struct {
	router.AMQPConfig
}

func (c *amqpConfig) register(s *settings) {
	s.URL(&c.URL, "amqp-url", "HERALD_AMQP_URL", defaultAMQPURL, "RabbitMQ connection URL")
	s.String(&c.QueueType, "amqp-queue-type", "HERALD_AMQP_QUEUE_TYPE", "quorum", "type of the queues Herald declares: quorum or classic")
	s.Int(&c.Prefetch, "amqp-prefetch", "HERALD_AMQP_PREFETCH", 4, "unacknowledged messages each consumer may hold")
	s.Int(&c.PublishChannels, "amqp-publish-channels", "HERALD_AMQP_PUBLISH_CHANNELS", 4, "channels in each publisher's pool")
}

type relayConfig struct {
	router.RelayConfig
}

func (c *relayConfig) register(s *settings) {
	s.Duration(&c.PollInterval, "relay-poll-interval", "HERALD_RELAY_POLL_INTERVAL", 50*time.Millisecond, "how often an idle outbox relay looks for new commands")
	s.Int(&c.BatchSize, "relay-batch-size", "HERALD_RELAY_BATCH_SIZE", 20, "commands forwarded per outbox transaction")
	s.Int(&c.Partitions, "relay-partitions", "HERALD_RELAY_PARTITIONS", 4, "forwarders sharing the outbox, publishing side by side")
}

// reconcileConfig sets when the reconciler sends again the command of a notification that
// stalled. Its default age is ten minutes: far beyond the longest silence of a healthy delivery
// with the default settings (an attempt's lease, 60 s, plus the longest retry delay, 30 s), and
// beyond what a backlog of a few hundred thousand commands keeps a command waiting in a work
// queue here; a stalled notification is sent within about eleven minutes.
type reconcileConfig struct {
	handlers.ReconcilePolicy
}

func (c *reconcileConfig) register(s *settings) {
	s.Duration(&c.After, "reconcile-after", "HERALD_RECONCILE_AFTER", 10*time.Minute, "how long a notification neither sent nor failed may go without an event, with no command waiting in the outbox, before its command is sent again; 0: never")
	s.Duration(&c.Interval, "reconcile-interval", "HERALD_RECONCILE_INTERVAL", time.Minute, "how often the reconciler looks for stalled notifications")
	s.Int(&c.Limit, "reconcile-limit", "HERALD_RECONCILE_LIMIT", 500, "most stalled notifications one look sends again")
}

func (c reconcileConfig) validate() error {
	var errs []error
	if c.After < 0 {
		errs = append(errs, fmt.Errorf("--reconcile-after %s: want 0 (never) or more", c.After))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--reconcile-interval %s: want more than 0", c.Interval))
	}
	if c.Limit < 1 {
		errs = append(errs, fmt.Errorf("--reconcile-limit %d: want at least 1", c.Limit))
	}
	return errors.Join(errs...)
}

type projectorConfig struct {
	router.ProjectorConfig
}

func (c *projectorConfig) register(s *settings) {
	s.Duration(&c.PollInterval, "projector-poll-interval", "HERALD_PROJECTOR_POLL_INTERVAL", 50*time.Millisecond, "how often an idle projection looks for new events")
	s.Int(&c.BatchSize, "projector-batch-size", "HERALD_PROJECTOR_BATCH_SIZE", 500, "events applied per projection transaction")
}

type workerConfig struct {
	Channels      []string
	Concurrency   int
	MaxAttempts   int
	Timeout       time.Duration
	Lease         time.Duration
	RetryInitial  time.Duration
	RetryMax      time.Duration
	RetryMultiply float64
	RetryJitter   float64
	Providers     providerConfig
}

func (c *workerConfig) register(s *settings) {
	s.Strings(&c.Channels, "channels", "HERALD_WORKER_CHANNELS", []string{"email", "sms"}, "channels this worker delivers")
	s.Int(&c.Concurrency, "concurrency", "HERALD_WORKER_CONCURRENCY", 8, "notifications delivered at once per channel")
	s.Int(&c.MaxAttempts, "max-attempts", "HERALD_MAX_ATTEMPTS", 5, "delivery attempts before a notification fails")
	s.Duration(&c.Timeout, "delivery-timeout", "HERALD_DELIVERY_TIMEOUT", 30*time.Second, "time limit of one delivery attempt")
	s.Duration(&c.Lease, "attempt-lease", "HERALD_ATTEMPT_LEASE", 0, "how long an attempt without an outcome is presumed alive before another worker takes over; 0: --delivery-timeout + 30s")
	s.Duration(&c.RetryInitial, "retry-initial-interval", "HERALD_RETRY_INITIAL_INTERVAL", time.Second, "delay before the second attempt")
	s.Duration(&c.RetryMax, "retry-max-interval", "HERALD_RETRY_MAX_INTERVAL", 30*time.Second, "longest delay between attempts")
	s.Float(&c.RetryMultiply, "retry-multiplier", "HERALD_RETRY_MULTIPLIER", 2, "factor the delay grows by after each attempt")
	s.Float(&c.RetryJitter, "retry-jitter", "HERALD_RETRY_JITTER", 0.2, "random spread of each delay, as a fraction of it")
	c.Providers.register(s)
}

func (c workerConfig) validate() error {
	var errs []error
	if _, err := c.channels(); err != nil {
		errs = append(errs, err)
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want at least 1", c.Concurrency))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("--max-attempts %d: want at least 1", c.MaxAttempts))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--delivery-timeout %s: want more than 0", c.Timeout))
	}
	if c.Lease != 0 && c.Lease <= c.Timeout {
		errs = append(errs, fmt.Errorf("--attempt-lease %s: want more than --delivery-timeout %s, or a running attempt would be duplicated", c.Lease, c.Timeout))
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("--retry-initial-interval %s and --retry-max-interval %s: want 0 < initial ≤ max", c.RetryInitial, c.RetryMax))
	}
	if c.RetryMultiply < 1 {
		errs = append(errs, fmt.Errorf("--retry-multiplier %g: want at least 1", c.RetryMultiply))
	}
	if c.RetryJitter < 0 || c.RetryJitter >= 1 {
		errs = append(errs, fmt.Errorf("--retry-jitter %g: want 0 ≤ jitter < 1", c.RetryJitter))
	}
	return errors.Join(errs...)
}

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

func (c workerConfig) policy() handlers.Policy {
	// An attempt still running after its timeout is cut off; the lease adds room for recording
	// its outcome before another worker may presume it abandoned.
	lease := c.Lease
	if lease == 0 {
		lease = c.Timeout + 30*time.Second
	}
	return handlers.Policy{MaxAttempts: c.MaxAttempts, Lease: lease, Timeout: c.Timeout}
}

func (c workerConfig) routerConfig() router.WorkerConfig {
	chans, _ := c.channels()
	return router.WorkerConfig{
		Channels:    chans,
		Concurrency: c.Concurrency,
		Retry: router.RetryConfig{
			MaxRetries:      2 * c.MaxAttempts,
			InitialInterval: c.RetryInitial,
			MaxInterval:     c.RetryMax,
			Multiplier:      c.RetryMultiply,
			Jitter:          c.RetryJitter,
		},
		Timeout: c.Timeout,
		// Attempts in flight finish and record their outcome before the process exits.
		CloseTimeout: c.Timeout + 35*time.Second,
	}
}

type providerConfig struct {
	Email string
	SMS   string
	SMTP  delivery.SMTPConfig
	HTTP  delivery.SMSConfig
}

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
	s.Secret(&c.HTTP.AuthToken, "sms-auth-token", "HERALD_SMS_AUTH_TOKEN", "SMS gateway auth token")
	s.String(&c.HTTP.From, "sms-from", "HERALD_SMS_FROM", "", "sender number of SMS, E.164")
	s.Duration(&c.HTTP.Timeout, "sms-timeout", "HERALD_SMS_TIMEOUT", 20*time.Second, "SMS gateway request timeout")
}

// build returns a provider for each channel, masking secrets in the errors they return: those
// errors are recorded in the log and shown to API clients.
func (c providerConfig) build(channels []herald.Channel, concurrency int, secrets *redact.Secrets, logger *slog.Logger) (map[herald.Channel]delivery.Provider, error) {
	out := map[herald.Channel]delivery.Provider{}
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
			p, err = delivery.NewHTTPSMS(c.HTTP)
		case ch == herald.ChannelEmail && c.Email == "log", ch == herald.ChannelSMS && c.SMS == "log":
			p = delivery.NewLog(logger)
		case ch == herald.ChannelEmail:
			err = fmt.Errorf("--email-provider %q: want smtp or log", c.Email)
		default:
			err = fmt.Errorf("--sms-provider %q: want http or log", c.SMS)
		}
		if err != nil {
			return nil, fmt.Errorf("%s provider: %w", ch, err)
		}
		out[ch] = delivery.Masked(p, secrets)
	}
	return out, nil
}

type httpConfig struct {
	Addr           string
	MaxBodyBytes   int
	RateLimit      int
	RateWindow     time.Duration
	AddressLimit   int
	TrustedProxies []string
	IdempotencyTTL time.Duration
}

func (c *httpConfig) register(s *settings, def string) {
	s.String(&c.Addr, "http-addr", "HERALD_HTTP_ADDR", def, "address the HTTP API listens on")
	s.Int(&c.MaxBodyBytes, "max-body-bytes", "HERALD_MAX_BODY_BYTES", 256<<10, "largest request body accepted, in bytes")
	s.Int(&c.RateLimit, "rate-limit", "HERALD_RATE_LIMIT", 500, "requests one API key may make per --rate-limit-window, in each API process; 0: no limit")
	s.Duration(&c.RateWindow, "rate-limit-window", "HERALD_RATE_LIMIT_WINDOW", time.Second, "window of --rate-limit and --address-rate-limit")
	s.Int(&c.AddressLimit, "address-rate-limit", "HERALD_ADDRESS_RATE_LIMIT", 20, "requests with a missing or invalid API key one client address may make per --rate-limit-window, in each API process; past it the address gets 429 before any key is looked up; 0: no limit")
	s.Strings(&c.TrustedProxies, "trusted-proxies", "HERALD_TRUSTED_PROXIES", nil, "CIDR prefixes of the reverse proxies in front of Herald, whose X-Forwarded-For gives the client address; none: the TCP peer is the client")
	s.Duration(&c.IdempotencyTTL, "idempotency-ttl", "HERALD_IDEMPOTENCY_TTL", handlers.DefaultIdempotencyTTL, "how long an Idempotency-Key is remembered")
}

// trustedProxies is --trusted-proxies without blanks: HERALD_TRUSTED_PROXIES="" means none.
func (c httpConfig) trustedProxies() []string {
	var out []string
	for _, p := range c.TrustedProxies {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c httpConfig) validate() error {
	var errs []error
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("--rate-limit %d: want 0 (no limit) or more", c.RateLimit))
	}
	if c.AddressLimit < 0 {
		errs = append(errs, fmt.Errorf("--address-rate-limit %d: want 0 (no limit) or more", c.AddressLimit))
	}
	if err := heraldhttp.ParseTrustedProxies(c.trustedProxies()); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if c.RateWindow <= 0 {
		errs = append(errs, fmt.Errorf("--rate-limit-window %s: want more than 0", c.RateWindow))
	}
	if c.IdempotencyTTL < time.Second {
		errs = append(errs, fmt.Errorf("--idempotency-ttl %s: want at least 1s", c.IdempotencyTTL))
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("--max-body-bytes %d: want at least 1", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}
