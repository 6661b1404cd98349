package bench

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config says what one run does. The zero value is not usable: start from DefaultConfig.
type Config struct {
	// N is how many notifications to send.
	N int
	// SMSRatio is the share of them that are SMS (the rest are emails), 0 to 1.
	SMSRatio float64
	// HTML sends each email with an HTML newsletter of about 20 KB as its template instead of
	// a line of text.
	HTML bool
	// Template sends by stored templates (created by the run) instead of carrying them in each
	// request: the same templates and variables.
	Template bool
	// Rate, when above 0, sends open-loop at this many requests a second, with at most
	// MaxInFlight requests outstanding; 0 sends closed-loop from Concurrency clients.
	Rate        float64
	MaxInFlight int
	// Concurrency is the number of closed-loop clients, and the number of publishers and
	// PostgreSQL clients of the ceiling measurement.
	Concurrency int
	// RequestTimeout bounds one API request.
	RequestTimeout time.Duration

	// Sample polls the status of every Sample-th notification (0: none) every PollInterval,
	// making at most PollRate status and events requests a second in all.
	Sample       int
	PollInterval time.Duration
	PollRate     float64
	// Drain is how long to wait, after the last request, for every accepted notification to be
	// delivered and terminal.
	Drain time.Duration

	// Ceiling measures the raw AMQP and PostgreSQL throughput before the load, each for
	// CeilingDuration.
	Ceiling         bool
	CeilingDuration time.Duration

	// Spawn names the Herald processes to start ("all", or "serve", "worker", "projector");
	// Workers is the number of "worker" processes. Env is added to their environment
	// (KEY=VALUE). Executable is the herald binary to run them from.
	Spawn        []string
	Workers      int
	Env          []string
	Executable   string
	ReadyTimeout time.Duration
	StopTimeout  time.Duration

	// The services the run creates its database and vhost on.
	AdminDatabaseURL string
	RabbitMQAPI      string
	AMQPURL          string
	// Keep leaves the database, the vhost and the processes' logs in place after the run.
	Keep bool

	// URL and APIKey drive an already running Herald instead of spawning one.
	URL    string
	APIKey string

	// Webhooks is how many healthy webhook endpoints, subscribed to every notification event,
	// the run registers before the load; WebhookFailing adds one that answers 500 to everything.
	// Both need a spawned process that runs the dispatcher ("all").
	Webhooks       int
	WebhookFailing bool

	// Ledger is the tamper-evident log the run measures Herald with: LedgerChained (the
	// default), LedgerSealed or LedgerOff (ledger.go).
	Ledger string

	// HeraldVersion is reported as is.
	HeraldVersion string
}

// DefaultConfig returns the defaults of herald bench.
func DefaultConfig() Config {
	return Config{
		N:                10000,
		SMSRatio:         0.5,
		MaxInFlight:      256,
		Concurrency:      16,
		RequestTimeout:   30 * time.Second,
		Sample:           10,
		PollInterval:     20 * time.Millisecond,
		PollRate:         500,
		Drain:            5 * time.Minute,
		Ceiling:          true,
		CeilingDuration:  5 * time.Second,
		Spawn:            []string{"all"},
		Workers:          1,
		ReadyTimeout:     60 * time.Second,
		StopTimeout:      90 * time.Second,
		AdminDatabaseURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		RabbitMQAPI:      "http://guest:guest@127.0.0.1:15672",
		AMQPURL:          "amqp://guest:guest@127.0.0.1:5672/",
		Ledger:           LedgerChained,
	}
}

// spawning reports whether the run starts Herald itself.
func (c Config) spawning() bool { return c.URL == "" }

// minRate and maxRate bound --rate and --poll-rate: below one request a minute a run is not a
// load, and above a million a second the schedule's interval rounds to nothing.
const (
	minRate = 1.0 / 60
	maxRate = 1e6
)

// maxN bounds N: the SMS recipients carry the number in nine digits.
const maxN = 1_000_000_000

// Validate checks the configuration and names every bad flag, so that one try shows them all.
func (c Config) Validate() error {
	var errs flagErrors
	c.validateLoad(&errs)
	if c.Ceiling || c.spawning() {
		c.validateServices(&errs)
	}
	if c.spawning() {
		c.validateSpawnMode(&errs)
	} else {
		c.validateURLMode(&errs)
	}
	c.validateWebhooks(&errs)
	c.validateLedger(&errs)
	return errors.Join(errs...)
}

// validateLedger checks --ledger: sealing and turning the chain off need the database bench made.
func (c Config) validateLedger(errs *flagErrors) {
	if !slices.Contains(ledgers, c.Ledger) {
		errs.bad("--ledger %q: want one of %s", c.Ledger, strings.Join(ledgers, ", "))
		return
	}
	if c.Ledger != LedgerChained && !c.spawning() {
		errs.bad("--ledger %s needs a Herald bench starts itself, not --url", c.Ledger)
	}
	// The report says whether the sealer ran from --ledger alone.
	for _, kv := range c.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "HERALD_CHECKPOINT_KEY" || k == "HERALD_CHECKPOINT_FILE" {
			errs.bad("--env %s: the run's checkpoint key and file are --ledger sealed's", k)
		}
	}
}

// maxWebhooks bounds --webhooks: each endpoint is a reader of the whole log, and a few already
// show what one more costs.
const maxWebhooks = 16

// validateWebhooks checks the webhook flags: the bench registers endpoints only in the database
// it made, and only `herald all` runs the dispatcher among the processes it can spawn.
func (c Config) validateWebhooks(errs *flagErrors) {
	if c.Webhooks < 0 || c.Webhooks > maxWebhooks {
		errs.bad("--webhooks %d: want 0 (none) to %d endpoints", c.Webhooks, maxWebhooks)
	}
	if !c.webhooks() {
		return
	}
	switch {
	case !c.spawning():
		errs.bad("--webhooks and --webhook-failing need a Herald bench starts itself, not --url")
	case !slices.Contains(c.Spawn, "all"):
		errs.bad("--webhooks and --webhook-failing need all in --spawn: it runs the webhook dispatcher")
	}
}

// webhooks reports whether the run registers webhook endpoints.
func (c Config) webhooks() bool { return c.Webhooks > 0 || c.WebhookFailing }

// flagErrors collects what is wrong with the flags, in the order they are checked.
type flagErrors []error

// bad adds one flag's fault.
func (e *flagErrors) bad(format string, args ...any) { *e = append(*e, fmt.Errorf(format, args...)) }

// validateLoad checks the flags that shape the load, the watching and the ceiling.
func (c Config) validateLoad(errs *flagErrors) {
	if c.N < 1 || c.N > maxN {
		errs.bad("-n %d: want 1 to %d notifications", c.N, maxN)
	}
	// Comparisons are false for NaN, so each range is checked as "inside", not "outside".
	if !(c.SMSRatio >= 0 && c.SMSRatio <= 1) {
		errs.bad("--sms-ratio %g: want 0 (all email) to 1 (all SMS)", c.SMSRatio)
	}
	if !(c.Rate == 0 || (c.Rate >= minRate && c.Rate <= maxRate)) {
		errs.bad("--rate %g: want 0 (closed loop) or %.3g to %.0f requests per second", c.Rate, minRate, maxRate)
	}
	if c.MaxInFlight < 1 {
		errs.bad("--max-in-flight %d: want at least 1", c.MaxInFlight)
	}
	if c.Concurrency < 1 {
		errs.bad("--concurrency %d: want at least 1", c.Concurrency)
	}
	if c.RequestTimeout <= 0 {
		errs.bad("--request-timeout %s: want more than 0", c.RequestTimeout)
	}
	if c.Sample < 0 {
		errs.bad("--sample %d: want 0 (no status polling) or more", c.Sample)
	}
	if c.PollInterval <= 0 {
		errs.bad("--poll-interval %s: want more than 0", c.PollInterval)
	}
	if !(c.PollRate >= minRate && c.PollRate <= maxRate) {
		errs.bad("--poll-rate %g: want %.3g to %.0f requests per second", c.PollRate, minRate, maxRate)
	}
	if c.Drain <= 0 {
		errs.bad("--drain %s: want more than 0", c.Drain)
	}
	if c.Ceiling && c.CeilingDuration < 100*time.Millisecond {
		errs.bad("--ceiling-duration %s: want at least 100ms", c.CeilingDuration)
	}
}

// validateServices checks the URLs of the services the run makes its database and vhost on.
func (c Config) validateServices(errs *flagErrors) {
	if _, err := url.Parse(c.AdminDatabaseURL); err != nil || !strings.HasPrefix(c.AdminDatabaseURL, "postgres") {
		errs.bad("--admin-database-url %q: want a postgres:// URL", c.AdminDatabaseURL)
	}
	if !hasScheme(c.RabbitMQAPI, "http", "https") {
		errs.bad("--rabbitmq-api %q: want the management API's http:// URL, with credentials", c.RabbitMQAPI)
	}
	if !hasScheme(c.AMQPURL, "amqp", "amqps") {
		errs.bad("--amqp-url %q: want an amqp:// URL", c.AMQPURL)
	}
}

// validateSpawnMode checks the flags of a run that starts Herald itself.
func (c Config) validateSpawnMode(errs *flagErrors) {
	if err := validateSpawn(c.Spawn, c.Workers); err != nil {
		*errs = append(*errs, err)
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs.bad("--env %q: want KEY=VALUE", kv)
		}
	}
	if c.ReadyTimeout <= 0 {
		errs.bad("--ready-timeout %s: want more than 0", c.ReadyTimeout)
	}
	if c.APIKey != "" {
		errs.bad("--api-key goes with --url; without it bench makes its own key")
	}
}

// validateURLMode checks the flags of a run against a Herald already running.
func (c Config) validateURLMode(errs *flagErrors) {
	if c.Template {
		errs.bad("--template needs a Herald bench starts itself, not --url: it stores the templates in its database")
	}
	if !hasScheme(c.URL, "http", "https") {
		errs.bad("--url %q: want Herald's base URL, e.g. http://127.0.0.1:8080", c.URL)
	}
	if c.APIKey == "" {
		errs.bad("--url needs --api-key: a key with the send and read scopes (herald apikeys create)")
	}
}

// hasScheme says whether raw is a URL with a host and one of schemes.
func hasScheme(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	return err == nil && slices.Contains(schemes, u.Scheme) && u.Host != ""
}

// roles a spawned process can have.
var roles = []string{"all", "serve", "worker", "projector"}

// validateSpawn checks that --spawn and --workers make one working Herald: every part run once,
// one API, and extra workers only as worker processes.
func validateSpawn(spawn []string, workers int) error {
	if len(spawn) == 0 {
		return errors.New("--spawn: name all, or serve, worker and projector")
	}
	seen := map[string]bool{}
	for _, r := range spawn {
		if !slices.Contains(roles, r) {
			return fmt.Errorf("--spawn %q: want all, serve, worker or projector", r)
		}
		if seen[r] {
			return fmt.Errorf("--spawn names %s twice: use --workers for more worker processes", r)
		}
		seen[r] = true
	}
	var missing []string
	for _, part := range []string{"serve", "worker", "projector"} {
		if !seen["all"] && !seen[part] {
			missing = append(missing, part)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--spawn %s: nothing would run %s; add them or use all", strings.Join(spawn, ","), strings.Join(missing, ", "))
	}
	if seen["all"] && seen["serve"] {
		return errors.New("--spawn all,serve: the bench drives one API; all already runs it")
	}
	if workers < 1 {
		return fmt.Errorf("--workers %d: want at least 1", workers)
	}
	if workers > 1 && !seen["worker"] {
		return fmt.Errorf("--workers %d: needs worker in --spawn (all runs its own workers)", workers)
	}
	return nil
}
