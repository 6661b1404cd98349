package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/console"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/ratelimit"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/scheduler"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/tracing"
	"github.com/herald-notify/herald/webhooks"
)

// parts says which components a process runs.
type parts struct {
	api, workers, projector, webhooks bool
	// bounces runs the bounce listener: always in `herald bounces serve`, and in `herald all`
	// when a bounce domain is set.
	bounces bool
}

// processConfig holds every setting a process may need; each command registers the ones its
// parts use.
type processConfig struct {
	logs      logConfig
	db        dbConfig
	amqp      amqpConfig
	http      httpConfig
	opsAddr   string
	pprof     bool
	relay     relayConfig
	reconcile reconcileConfig
	projector projectorConfig
	worker    workerConfig
	gateway   gatewayConfig
	webhooks  webhookConfig
	bounces   bounceConfig
	tracing   tracingConfig
	console   consoleConfig
	grace     time.Duration
	// secrets are the secret settings' values, once the command line is parsed.
	secrets func() *redact.Secrets
}

// processCommand builds a command that runs the parts p of Herald as a long-running process,
// with the settings those parts use.
func processCommand(use, short, long string, p parts) *cobra.Command {
	var cfg processConfig
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProcess(cmd.Context(), &cfg, p)
		},
	}
	s := newSettings(cmd)
	cfg.secrets = s.secrets
	cfg.logs.register(s)
	cfg.db.register(s, true)
	if p.api || p.workers {
		cfg.amqp.register(s)
		// The workers send SMS through the gateway; the API takes in its callbacks.
		cfg.gateway.register(s)
	}
	if p.api {
		cfg.http.register(s, ":8080")
		cfg.relay.register(s)
		cfg.reconcile.register(s)
		cfg.console.register(s)
		if !p.workers {
			// A cancel presumes an attempt abandoned after the workers' lease.
			cfg.worker.attemptConfig.register(s)
		}
	} else {
		s.String(&cfg.opsAddr, "ops-addr", "HERALD_OPS_ADDR", "", "address to serve /healthz, /readyz and /metrics on; empty: none")
	}
	if p.workers {
		cfg.worker.register(s)
	}
	if p.projector {
		cfg.projector.register(s)
	}
	if p.api || p.webhooks {
		// The API registers endpoints (checking their URLs) and runs replays.
		cfg.webhooks.register(s)
	}
	if p.workers || p.bounces {
		// The workers put it in each email's return path; the listener takes mail for it.
		cfg.bounces.registerDomain(s)
	}
	if p.bounces {
		cfg.bounces.registerListener(s)
	}
	cfg.tracing.register(s)
	s.Duration(&cfg.grace, "shutdown-grace", "HERALD_SHUTDOWN_GRACE", 75*time.Second, "how long each component may take to stop")
	s.Bool(&cfg.pprof, "pprof", "HERALD_PPROF", false, "serve Go's profiler at /debug/pprof/ beside /metrics (for measuring; keep it off the open network)")
	return cmd
}

// serveCommand runs the API and the outbox relay.
func serveCommand() *cobra.Command {
	return processCommand("serve", "Run the HTTP API and the outbox relay",
		`serve runs the HTTP API, which accepts notifications into the event log and the outbox in one
transaction, and the relay, which forwards the outbox's commands to RabbitMQ. The API keeps
accepting while RabbitMQ is away; the relay catches up when it is back. The reconciler sends
again the command of a notification that stalled (--reconcile-after): RabbitMQ lost it. The
scheduler releases scheduled sends (send_at) when they are due.`,
		parts{api: true})
}

// workerCommand runs the delivery workers.
func workerCommand() *cobra.Command {
	return processCommand("worker", "Run delivery workers for email and SMS",
		`worker consumes SendNotification commands from the email_notifications and sms_notifications
queues, and from their priority lanes beside them (email_notifications_high, …_low), each lane
with consumers of its own, and delivers them through the configured providers, with retries (exponential backoff with
jitter); a notification whose error is permanent or whose attempts run out is recorded as failed
and its command parked in poison_notifications. Any number of workers may run at once.`,
		parts{workers: true})
}

// projectorCommand runs the projector.
func projectorCommand() *cobra.Command {
	return processCommand("projector", "Run the projector that keeps status and history up to date",
		`projector reads the event log in order and maintains the notification_status and
notification_history read models, each in the same transaction as its position in the log.`,
		parts{projector: true})
}

// allCommand runs every part of Herald in one process.
func allCommand() *cobra.Command {
	return processCommand("all", "Run the API, relay, workers, projector, webhook delivery and bounce listener in one process",
		`all runs everything Herald needs in one process: the HTTP API with the outbox relay, the
reconciler and the scheduler, the delivery workers, the projector, the webhook dispatcher and, when --bounce-domain
is set, the bounce listener. It is the easiest way to run Herald on one machine.`,
		parts{api: true, workers: true, projector: true, webhooks: true, bounces: true})
}

// webhooksServeCommand runs the webhook dispatcher alone.
func webhooksServeCommand() *cobra.Command {
	return processCommand("serve", "Deliver webhooks: post the log's events to the registered endpoints",
		`serve runs the webhook dispatcher: each enabled endpoint reads the event log as a consumer of
its own and receives the events it subscribed to, signed, in log order, with retries on the
schedule (--webhook-retry-schedule). Any number may run: an endpoint's live delivery runs in one
process at a time (another takes over within --webhook-lease of it dying), and all of them share
the retries. herald all runs it too.`,
		parts{webhooks: true})
}

// runProcess runs the parts p of Herald with cfg until ctx is done or one of them fails: it
// checks the settings, connects, assembles the components and runs them.
func runProcess(ctx context.Context, cfg *processConfig, p parts) error {
	// The collector's headers are secrets like the flags': read first, so that every log and
	// error masks them. A malformed list is an error only if traces are exported.
	headers, headerSecrets, headersErr := exportHeaders(os.LookupEnv)
	cfg.addSecrets(headerSecrets...)
	logger, err := cfg.logs.logger()
	if err != nil {
		return err
	}
	if err := cfg.validate(p); err != nil {
		return err
	}
	tr, exporters, err := cfg.tracingExporter(p, headers, headersErr, logger)
	if err != nil {
		return err
	}
	pool, err := cfg.db.pool(ctx, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	comps, err := cfg.assemble(ctx, p, &process{pool: pool, log: events.NewLog(pool), logger: logger, reg: newMetricsRegistry(),
		checks: []heraldhttp.Check{{Name: "postgres", Ready: pool.Ping}}, tracing: tr, comps: exporters})
	if err != nil {
		return err
	}
	return runComponents(ctx, logger, cfg.grace, comps...)
}

// addSecrets adds values the environment holds to the secrets cfg's logs and components mask.
func (cfg *processConfig) addSecrets(values ...string) {
	if len(values) == 0 {
		return
	}
	flags := cfg.secrets
	cfg.secrets = func() *redact.Secrets {
		var s *redact.Secrets
		if flags != nil {
			s = flags()
		}
		return s.With(values...)
	}
	cfg.logs.secrets = cfg.secrets
}

// validate checks the settings of the parts p runs, before anything connects.
func (cfg *processConfig) validate(p parts) error {
	var errs []error
	if p.api || p.workers {
		errs = append(errs, cfg.amqp.Validate(), cfg.gateway.validate())
	}
	if p.workers {
		errs = append(errs, cfg.worker.validate())
	}
	if p.projector {
		errs = append(errs, cfg.projector.validate())
	}
	if p.api {
		errs = append(errs, cfg.http.validate(), cfg.reconcile.validate(), cfg.console.validate())
		if !p.workers {
			errs = append(errs, cfg.worker.attemptConfig.validate())
		}
	}
	if p.api || p.webhooks {
		errs = append(errs, cfg.webhooks.validate())
	}
	if p.workers || p.bounces {
		// `herald bounces serve` runs nothing but the listener, which needs the domain.
		errs = append(errs, cfg.bounces.validateDomain(p.bounces && !p.workers))
	}
	if p.bounces {
		errs = append(errs, cfg.bounces.validateListener())
	}
	return errors.Join(errs...)
}

// process is what the components of one process share while they are assembled: the database,
// the metrics, the readiness checks, and the components so far.
type process struct {
	pool     *pgxpool.Pool
	log      *events.Log
	logger   *slog.Logger
	reg      *prometheus.Registry
	checks   []heraldhttp.Check
	comps    []component
	topology *router.Topology
	// webhookSender is shared by the dispatcher and the API's replays.
	webhookSender *webhooks.Sender
	// tracing opens the spans of a notification's hops; off without an exporter.
	tracing tracing.Tracing
}

// add appends a component; ready, when given, becomes one of /readyz's checks.
func (pr *process) add(name string, run func(context.Context) error, ready func(context.Context) error) {
	pr.comps = append(pr.comps, component{name: name, run: run})
	if ready != nil {
		pr.checks = append(pr.checks, heraldhttp.Check{Name: name, Ready: ready})
	}
}

// newMetricsRegistry returns the registry /metrics serves, with the Go runtime's and the
// process's collectors.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// assemble builds the components of the parts p, in the order they start: they stop in reverse.
func (cfg *processConfig) assemble(ctx context.Context, p parts, pr *process) ([]component, error) {
	if p.api || p.workers {
		pr.topology = router.NewTopology(cfg.amqp.AMQPConfig, pr.logger)
		pr.comps = append(pr.comps, component{name: "rabbitmq topology", run: pr.topology.Run})
		pr.checks = append(pr.checks, heraldhttp.Check{Name: "rabbitmq", Ready: pr.topology.Ready})
		pr.reg.MustRegister(pr.topology.QueueDepths())
	}
	if p.projector {
		pc := cfg.projector.ProjectorConfig
		pc.Metrics = pr.reg
		pc.Tracing = pr.tracing
		proj := router.NewProjector(pr.pool, pc, pr.logger, projections.All()...)
		pr.add("projector", proj.Run, proj.Ready)
		if err := cfg.addSealer(pr); err != nil {
			return nil, err
		}
	}
	if p.workers {
		if err := cfg.addWorkers(pr); err != nil {
			return nil, err
		}
	}
	if p.webhooks {
		cfg.addDispatcher(pr)
	}
	if p.bounces && cfg.bounces.Domain != "" {
		if err := cfg.addBounceListener(pr); err != nil {
			return nil, err
		}
	}
	var srv *heraldhttp.Server
	addr := cfg.opsAddr
	if p.api {
		srv = cfg.addAPI(ctx, pr)
		addr = cfg.http.Addr
	}
	if addr != "" {
		if srv == nil {
			srv = cfg.newServer(pr, nil, nil)
		}
		c, err := httpComponent("http", addr, srv.Handler(), pr.logger)
		if err != nil {
			return nil, err
		}
		pr.comps = append(pr.comps, c)
	}
	return pr.comps, nil
}

// addWorkers adds the delivery workers, with a provider for each of their channels.
func (cfg *processConfig) addWorkers(pr *process) error {
	channels, _ := cfg.worker.channels()
	cfg.worker.Providers.SMTP.BounceDomain = cfg.bounces.Domain
	providers, failovers, err := cfg.worker.Providers.build(channels, 2*cfg.worker.Concurrency+cfg.worker.HighConcurrency, cfg.gateway, cfg.secrets(), pr.logger)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	worker := fmt.Sprintf("%s/%d", host, os.Getpid())
	cfg.addBreakers(pr, worker, failovers)
	deliverer := handlers.NewDeliverer(pr.log, providers, cfg.worker.policy(), worker, pr.logger).
		WithSuppressions(suppressions.New(pr.pool)).WithFiles(attachments.New(pr.pool)).WithTracing(pr.tracing).
		WithMetrics(handlers.NewDeliveryMetrics(pr.reg)).WithConns(pr.pool).
		WithOutcomes(events.NewGroup(pr.pool, pr.log))
	settings, names := cfg.worker.Rates.ignored(providers)
	for i, s := range settings {
		pr.logger.Warn("a provider rate limit is set for a channel that does not deliver through its provider; it is ignored",
			"setting", s, "provider", names[i])
	}
	if rates := cfg.worker.Rates.rates(); rates != nil {
		deliverer = deliverer.WithRateLimiter(ratelimit.New(pr.pool, rates, cfg.worker.Rates.MaxWait, ratelimit.NewMetrics(pr.reg), pr.logger))
	}
	wc := cfg.worker.routerConfig()
	wc.Metrics = pr.reg
	wc.Tracing = pr.tracing
	workers := router.NewWorkers(cfg.amqp.AMQPConfig, wc, deliverer, pr.topology, worker, pr.logger)
	pr.add("workers", workers.Run, nil)
	return nil
}

// addAPI adds the outbox relay and its purge, the reconciler, the scheduler, the idempotency keys' purge and the
// attachments' sweep,
// and returns the API's server, with the operator's, the keys', the rebuilds', the webhooks', the
// suppression list's and the stored templates' routes.
func (cfg *processConfig) addAPI(ctx context.Context, pr *process) *heraldhttp.Server {
	pool, log, logger := pr.pool, pr.log, pr.logger
	rc := cfg.relay.RelayConfig
	rc.Tracing = pr.tracing
	// Whatever this process writes to the outbox wakes its relay at once.
	rc.Wake = router.NewOutboxSignal()
	relay := router.NewRelay(pool, cfg.amqp.AMQPConfig, rc, pr.topology, logger)
	outbox := router.NewOutbox(nil).WithTracing(pr.tracing).WithSignal(rc.Wake)
	pr.add("outbox relay", relay.Run, relay.Ready)
	pr.reg.MustRegister(relay.Backlog())
	pr.add("outbox purge", func(ctx context.Context) error { return purgeOutbox(ctx, relay, logger) }, nil)
	acc := handlers.NewAcceptor(pool, log, outbox, cfg.http.limits()).WithIdempotencyTTL(cfg.http.IdempotencyTTL).
		WithTemplates(templatestore.New(pool)).WithTracing(pr.tracing)
	if cfg.reconcile.After > 0 {
		rec := handlers.NewReconciler(pool, log, outbox, projections.NewReader(pool, log), relay, cfg.reconcile.ReconcilePolicy, logger)
		pr.add("reconciler", rec.Run, nil)
	}
	sched := scheduler.New(pool, outbox, logger).WithMetrics(scheduler.NewMetrics(pr.reg))
	pr.add("scheduler", sched.Run, nil)
	pr.add("idempotency key purge", func(ctx context.Context) error { return purgeIdempotencyKeys(ctx, acc, pool, logger) }, nil)
	files := attachments.New(pool)
	pr.add("attachment sweep", func(ctx context.Context) error {
		return purgeAttachments(ctx, files, cfg.http.AttachmentRetention, logger)
	}, nil)

	srv := cfg.newServer(pr, acc, projections.NewReader(pool, log))
	op := newOperator(pool, log, router.NewOutbox(nil).WithSignal(rc.Wake), cfg.amqp.URL, logger)
	srv.WithOperator(op)
	srv.WithCanceller(handlers.NewCanceller(pool, log, cfg.worker.lease()).WithIdempotencyTTL(cfg.http.IdempotencyTTL))
	limit := heraldhttp.RateLimit{Requests: cfg.http.RateLimit, Window: cfg.http.RateWindow, PerAddress: cfg.http.AddressLimit}
	if limit.Requests > 0 {
		// Shared with every other API process through the database.
		limit.Keys = ratelimit.NewKeys(pool, ratelimit.KeyLimit{Requests: limit.Requests, Window: limit.Window},
			ratelimit.NewKeyMetrics(pr.reg), logger)
	}
	srv.WithAuth(apikeys.NewStore(pool), limit)
	// One set of jobs: a rebuild started in the console shows in the API, and the reverse.
	rebuilds := projections.NewJobs(ctx, projections.NewRebuilder(pool, log, 5000, logger), log)
	srv.WithRebuilds(rebuilds)
	if cfg.console.Enabled {
		srv.WithConsole(console.Prefix, cfg.addConsole(pr, op, rebuilds).Handler())
	}
	replays := webhooks.NewReplayJobs(ctx, cfg.webhookSender(pr), cfg.webhooks.Lanes)
	// Stops the replays under way, and waits for their last page to be recorded, before the
	// process closes its pool.
	pr.add("webhook replays", func(ctx context.Context) error { <-ctx.Done(); replays.Wait(); return nil }, nil)
	srv.WithWebhooks(webhooks.NewEndpoints(pool, cfg.webhooks.policy()), replays)
	srv.WithReceipts(cfg.smsReceipts(pr))
	srv.WithSuppressions(suppressions.New(pool))
	srv.WithTemplates(templatestore.New(pool))
	srv.WithProofs(ledgerProofs{pool})
	return srv
}

// newServer returns the HTTP server of the process: the API when acceptor and reader are given,
// and always /healthz, /readyz and /metrics.
func (cfg *processConfig) newServer(pr *process, acceptor heraldhttp.Acceptor, reader heraldhttp.Reader) *heraldhttp.Server {
	return heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: int64(cfg.http.MaxBodyBytes),
		SendBodyBytes: int64(cfg.http.MaxBodyBytes) + cfg.http.limits().SendBodyBytes(), Metrics: pr.reg, Profiling: cfg.pprof,
		Secrets: cfg.secrets(), TrustedProxies: cfg.http.trustedProxies(), Tracing: pr.tracing},
		acceptor, reader, pr.checks, pr.logger)
}
