package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"os"
	"strings"
	"time"

	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
)

// Defaults point at services on this machine, so a developer needs no configuration.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/herald?sslmode=disable"
	defaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
)

// logConfig is where and how a command logs: its level and format, on stderr.
type logConfig struct {
	Level  string
	Format string
	// secrets are the command's secret settings, masked in every record.
	secrets func() *redact.Secrets
}

// register binds the log settings to the command's flags.
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

// amqpConfig is how the API and the workers reach RabbitMQ and declare their queues.
type amqpConfig struct {
	router.AMQPConfig
}

// register binds the RabbitMQ settings to the command's flags.
func (c *amqpConfig) register(s *settings) {
	registerAMQPURL(s, &c.URL)
	s.String(&c.QueueType, "amqp-queue-type", "HERALD_AMQP_QUEUE_TYPE", "quorum", "type of the queues Herald declares: quorum or classic")
	s.Int(&c.Prefetch, "amqp-prefetch", "HERALD_AMQP_PREFETCH", 4, "unacknowledged messages each consumer may hold")
	s.Int(&c.PublishChannels, "amqp-publish-channels", "HERALD_AMQP_PUBLISH_CHANNELS", 4, "channels in each publisher's pool")
}

// registerAMQPURL binds where RabbitMQ is: the one definition of --amqp-url, for the processes and
// the poison commands alike.
func registerAMQPURL(s *settings, url *string) {
	s.URL(url, "amqp-url", "HERALD_AMQP_URL", defaultAMQPURL,
		"RabbitMQ connection URL; a cluster's nodes as comma-separated URLs or hosts (amqp://u:p@h1,h2,h3/vhost), tried in order")
}

// relayConfig is how the outbox relay forwards commands to RabbitMQ: how often, how many at a time.
type relayConfig struct {
	router.RelayConfig
}

// register binds the relay's settings to the command's flags.
func (c *relayConfig) register(s *settings) {
	s.Duration(&c.PollInterval, "relay-poll-interval", "HERALD_RELAY_POLL_INTERVAL", 50*time.Millisecond, "how soon the outbox relay looks again once it finds no new commands; the least time between its looks when woken")
	s.Duration(&c.IdlePollMax, "relay-idle-poll-max", "HERALD_RELAY_IDLE_POLL_MAX", time.Second, "longest wait of an idle outbox relay between looks, doubling from the poll interval; a command written by another process is forwarded within it")
	s.Int(&c.BatchSize, "relay-batch-size", "HERALD_RELAY_BATCH_SIZE", 20, "commands forwarded per outbox transaction")
	s.Int(&c.Partitions, "relay-partitions", "HERALD_RELAY_PARTITIONS", 8, "forwarders sharing the outbox, publishing side by side")
}

// reconcileConfig sets when the reconciler sends again the command of a notification that
// stalled. Its default age is ten minutes: far beyond the longest silence of a healthy delivery
// with the default settings (an attempt's lease, 60 s, plus the longest retry delay, 30 s), and
// beyond what a backlog of a few hundred thousand commands keeps a command waiting in a work
// queue here; a stalled notification is sent within about eleven minutes.
type reconcileConfig struct {
	handlers.ReconcilePolicy
}

// register binds the reconciler's settings to the command's flags.
func (c *reconcileConfig) register(s *settings) {
	s.Duration(&c.After, "reconcile-after", "HERALD_RECONCILE_AFTER", 10*time.Minute, "how long a notification neither sent nor failed may go without an event, with no command waiting in the outbox, before its command is sent again; 0: never")
	s.Duration(&c.Interval, "reconcile-interval", "HERALD_RECONCILE_INTERVAL", time.Minute, "how often the reconciler looks for stalled notifications")
	s.Int(&c.Limit, "reconcile-limit", "HERALD_RECONCILE_LIMIT", 500, "most stalled notifications one look sends again")
}

// validate checks the reconciler's settings before anything connects.
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

// projectorConfig is how the projector reads the log: how often, how many events at a time.
type projectorConfig struct {
	router.ProjectorConfig
	// CheckpointKey is the file of the sealer's Ed25519 private key; empty: no sealer.
	CheckpointKey      string
	CheckpointInterval time.Duration
	// CheckpointFile, when set, gets each new checkpoint as a JSON line.
	CheckpointFile string
	// CheckpointPreviousKeys are the public keys, besides the checkpoint key's, whose signature
	// the sealer accepts on the last checkpoint it extends: the old key, after a rotation.
	CheckpointPreviousKeys []string
}

// register binds the projector's settings to the command's flags.
func (c *projectorConfig) register(s *settings) {
	s.Duration(&c.PollInterval, "projector-poll-interval", "HERALD_PROJECTOR_POLL_INTERVAL", 50*time.Millisecond, "how often an idle projection looks for new events")
	s.Int(&c.BatchSize, "projector-batch-size", "HERALD_PROJECTOR_BATCH_SIZE", 500, "events applied per projection transaction")
	s.String(&c.CheckpointKey, "checkpoint-key", "HERALD_CHECKPOINT_KEY", "", `file of the Ed25519 private key that signs the log's checkpoints ("herald keys generate"); empty: no checkpoints are sealed`)
	s.Duration(&c.CheckpointInterval, "checkpoint-interval", "HERALD_CHECKPOINT_INTERVAL", 10*time.Second, "how often the sealer signs a checkpoint of the log, when the log grew")
	s.String(&c.CheckpointFile, "checkpoint-file", "HERALD_CHECKPOINT_FILE", "", "file each new checkpoint is appended to as a JSON line, a copy outside the database; empty: none")
	s.Strings(&c.CheckpointPreviousKeys, "checkpoint-previous-keys", "HERALD_CHECKPOINT_PREVIOUS_KEYS", nil, `public keys (base64 or hex, or files holding them), comma-separated, besides --checkpoint-key's, the sealer accepts as signers of the last checkpoint it extends: after a rotation, the old key's`)
}

// validate checks the sealer's settings: the key must be readable before anything starts.
func (c projectorConfig) validate() error {
	if c.CheckpointInterval <= 0 {
		return fmt.Errorf("--checkpoint-interval %s: must be positive", c.CheckpointInterval)
	}
	if c.CheckpointKey != "" {
		if _, err := ledger.ReadPrivateKey(c.CheckpointKey); err != nil {
			return fmt.Errorf("--checkpoint-key: %w", err)
		}
	}
	if _, err := c.previousKeys(); err != nil {
		return err
	}
	return nil
}

// previousKeys reads --checkpoint-previous-keys.
func (c projectorConfig) previousKeys() (ledger.Keys, error) {
	var pubs []ed25519.PublicKey
	for i, s := range c.CheckpointPreviousKeys {
		if strings.TrimSpace(s) == "" {
			continue
		}
		pub, err := ledger.ParsePublicKey(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--checkpoint-previous-keys: key %d: %w", i+1, err)
		}
		pubs = append(pubs, pub)
	}
	return ledger.NewKeys(pubs...), nil
}

// httpConfig is how the API listens and what it allows: body size, rate limits, proxies, and how
// long an Idempotency-Key is remembered.
type httpConfig struct {
	Addr           string
	MaxBodyBytes   int
	RateLimit      int
	RateWindow     time.Duration
	AddressLimit   int
	TrustedProxies []string
	IdempotencyTTL time.Duration
	// Attachments: how many, how large, which types, and how long a file no send uses is kept.
	MaxAttachments      int
	MaxAttachmentBytes  int
	MaxAttachmentsBytes int
	AttachmentTypes     []string
	AttachmentRetention time.Duration
	// MaxScheduleAhead is how far ahead a send's send_at may be.
	MaxScheduleAhead time.Duration
}

// register binds the API's settings to the command's flags; def is the default address.
func (c *httpConfig) register(s *settings, def string) {
	s.String(&c.Addr, "http-addr", "HERALD_HTTP_ADDR", def, "address the HTTP API listens on")
	s.Int(&c.MaxBodyBytes, "max-body-bytes", "HERALD_MAX_BODY_BYTES", 256<<10, "largest request body accepted, in bytes")
	s.Int(&c.RateLimit, "rate-limit", "HERALD_RATE_LIMIT", 500, "requests one API key may make per --rate-limit-window, across all API processes together (they share it through the database); 0: no limit")
	s.Duration(&c.RateWindow, "rate-limit-window", "HERALD_RATE_LIMIT_WINDOW", time.Second, "window of --rate-limit and --address-rate-limit")
	s.Int(&c.AddressLimit, "address-rate-limit", "HERALD_ADDRESS_RATE_LIMIT", 20, "requests with a missing or invalid API key one client address may make per --rate-limit-window, in each API process; past it the address gets 429 before any key is looked up; 0: no limit")
	s.Strings(&c.TrustedProxies, "trusted-proxies", "HERALD_TRUSTED_PROXIES", nil, "CIDR prefixes of the reverse proxies in front of Herald, whose X-Forwarded-For gives the client address; none: the TCP peer is the client")
	s.Duration(&c.IdempotencyTTL, "idempotency-ttl", "HERALD_IDEMPOTENCY_TTL", handlers.DefaultIdempotencyTTL, "how long an Idempotency-Key is remembered")
	d := handlers.DefaultLimits
	s.Int(&c.MaxAttachments, "max-attachments", "HERALD_MAX_ATTACHMENTS", d.MaxAttachments, "most files one email may attach")
	s.Int(&c.MaxAttachmentBytes, "max-attachment-bytes", "HERALD_MAX_ATTACHMENT_BYTES", d.MaxAttachmentBytes, "largest attached file, in bytes (decoded)")
	s.Int(&c.MaxAttachmentsBytes, "max-attachments-bytes", "HERALD_MAX_ATTACHMENTS_BYTES", d.MaxAttachmentsBytes, "largest size of one email's attached files together, in bytes (decoded); a send's body may be larger than --max-body-bytes by these in base64")
	s.Strings(&c.AttachmentTypes, "attachment-types", "HERALD_ATTACHMENT_TYPES", d.AttachmentTypes, "media types an attached file may have")
	s.Duration(&c.AttachmentRetention, "attachment-retention", "HERALD_ATTACHMENT_RETENTION", attachments.DefaultRetention, "how long a stored attachment no send has used is kept before the sweep deletes it")
	s.Duration(&c.MaxScheduleAhead, "max-schedule-ahead", "HERALD_MAX_SCHEDULE_AHEAD", d.MaxScheduleAhead, "how far ahead of now a send's send_at may be")
}

// limits are what the API lets a client send.
func (c httpConfig) limits() handlers.Limits {
	l := handlers.DefaultLimits
	l.MaxAttachments, l.MaxAttachmentBytes, l.MaxAttachmentsBytes = c.MaxAttachments, c.MaxAttachmentBytes, c.MaxAttachmentsBytes
	l.MaxScheduleAhead = c.MaxScheduleAhead
	l.AttachmentTypes = nil
	for _, t := range c.AttachmentTypes {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			l.AttachmentTypes = append(l.AttachmentTypes, t)
		}
	}
	return l
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

// validate checks the API's settings before anything connects.
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
	if c.MaxAttachments < 0 {
		errs = append(errs, fmt.Errorf("--max-attachments %d: want 0 (none) or more", c.MaxAttachments))
	}
	if c.MaxAttachmentBytes < 1 || c.MaxAttachmentsBytes < c.MaxAttachmentBytes {
		errs = append(errs, fmt.Errorf("--max-attachment-bytes %d, --max-attachments-bytes %d: want at least 1 and no more than the second",
			c.MaxAttachmentBytes, c.MaxAttachmentsBytes))
	}
	if c.MaxAttachmentsBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("--max-attachments-bytes %d: want at most 64 MiB; mail servers refuse larger messages", c.MaxAttachmentsBytes))
	}
	for _, t := range c.limits().AttachmentTypes {
		if mt, _, err := mime.ParseMediaType(t); err != nil || mt != t || !strings.Contains(t, "/") {
			errs = append(errs, fmt.Errorf("--attachment-types: %q is not a media type without parameters", t))
		}
	}
	if c.AttachmentRetention < time.Hour {
		errs = append(errs, fmt.Errorf("--attachment-retention %s: want at least 1h", c.AttachmentRetention))
	}
	if c.MaxScheduleAhead < time.Second {
		errs = append(errs, fmt.Errorf("--max-schedule-ahead %s: want at least 1s", c.MaxScheduleAhead))
	}
	return errors.Join(errs...)
}
