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
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/router"
)

// parts says which components a process runs.
type parts struct {
	api, workers, projector bool
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
	grace     time.Duration
	// secrets are the secret settings' values, once the command line is parsed.
	secrets func() *redact.Secrets
}

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
	}
	if p.api {
		cfg.http.register(s, ":8080")
		cfg.relay.register(s)
		cfg.reconcile.register(s)
	} else {
		s.String(&cfg.opsAddr, "ops-addr", "HERALD_OPS_ADDR", "", "address to serve /healthz, /readyz and /metrics on; empty: none")
	}
	if p.workers {
		cfg.worker.register(s)
	}
	if p.projector {
		cfg.projector.register(s)
	}
	s.Duration(&cfg.grace, "shutdown-grace", "HERALD_SHUTDOWN_GRACE", 75*time.Second, "how long each component may take to stop")
	s.Bool(&cfg.pprof, "pprof", "HERALD_PPROF", false, "serve Go's profiler at /debug/pprof/ beside /metrics (for measuring; keep it off the open network)")
	return cmd
}

func serveCommand() *cobra.Command {
	return processCommand("serve", "Run the HTTP API and the outbox relay",
		`serve runs the HTTP API, which accepts notifications into the event log and the outbox in one
transaction, and the relay, which forwards the outbox's commands to RabbitMQ. The API keeps
accepting while RabbitMQ is away; the relay catches up when it is back. The reconciler sends
again the command of a notification that stalled (--reconcile-after): RabbitMQ lost it.`,
		parts{api: true})
}

func workerCommand() *cobra.Command {
	return processCommand("worker", "Run delivery workers for email and SMS",
		`worker consumes SendNotification commands from the email_notifications and sms_notifications
queues and delivers them through the configured providers, with retries (exponential backoff with
jitter); a notification whose error is permanent or whose attempts run out is recorded as failed
and its command parked in poison_notifications. Any number of workers may run at once.`,
		parts{workers: true})
}

func projectorCommand() *cobra.Command {
	return processCommand("projector", "Run the projector that keeps status and history up to date",
		`projector reads the event log in order and maintains the notification_status and
notification_history read models, each in the same transaction as its position in the log.`,
		parts{projector: true})
}

func allCommand() *cobra.Command {
	return processCommand("all", "Run the API, relay, workers and projector in one process",
		`all runs everything Herald needs in one process: the HTTP API with the outbox relay and the
reconciler, the delivery workers and the projector. It is the easiest way to run Herald on one machine.`,
		parts{api: true, workers: true, projector: true})
}

func runProcess(ctx context.Context, cfg *processConfig, p parts) error {
	logger, err := cfg.logs.logger()
	if err != nil {
		return err
	}
	var errs []error
	if p.api || p.workers {
		errs = append(errs, cfg.amqp.Validate())
	}
	if p.workers {
		errs = append(errs, cfg.worker.validate())
	}
	if p.api {
		errs = append(errs, cfg.http.validate(), cfg.reconcile.validate())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	pool, err := cfg.db.pool(ctx, logger)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log := events.NewLog(pool)
	checks := []heraldhttp.Check{{Name: "postgres", Ready: pool.Ping}}
	var comps []component

	var topology *router.Topology
	if p.api || p.workers {
		topology = router.NewTopology(cfg.amqp.AMQPConfig, logger)
		comps = append(comps, component{name: "rabbitmq topology", run: topology.Run})
		checks = append(checks, heraldhttp.Check{Name: "rabbitmq", Ready: topology.Ready})
	}
	if p.projector {
		pc := cfg.projector.ProjectorConfig
		pc.Metrics = reg
		proj := router.NewProjector(pool, pc, logger, projections.All()...)
		comps = append(comps, component{name: "projector", run: proj.Run})
		checks = append(checks, heraldhttp.Check{Name: "projector", Ready: proj.Ready})
	}
	if p.workers {
		channels, _ := cfg.worker.channels()
		providers, err := cfg.worker.Providers.build(channels, cfg.worker.Concurrency, cfg.secrets(), logger)
		if err != nil {
			return err
		}
		host, _ := os.Hostname()
		worker := fmt.Sprintf("%s/%d", host, os.Getpid())
		deliverer := handlers.NewDeliverer(log, providers, cfg.worker.policy(), worker, logger)
		wc := cfg.worker.routerConfig()
		wc.Metrics = reg
		workers := router.NewWorkers(cfg.amqp.AMQPConfig, wc, deliverer, topology, worker, logger)
		comps = append(comps, component{name: "workers", run: workers.Run})
	}

	var (
		acceptor heraldhttp.Acceptor
		reader   heraldhttp.Reader
		addr     = cfg.opsAddr
	)
	var acc *handlers.Acceptor
	if p.api {
		relay := router.NewRelay(pool, cfg.amqp.AMQPConfig, cfg.relay.RelayConfig, topology, logger)
		checks = append(checks, heraldhttp.Check{Name: "outbox relay", Ready: relay.Ready})
		comps = append(comps, component{name: "outbox relay", run: relay.Run},
			component{name: "outbox purge", run: func(ctx context.Context) error { return purgeOutbox(ctx, relay, logger) }})
		acc = handlers.NewAcceptor(pool, log, router.NewOutbox(nil), handlers.DefaultLimits).WithIdempotencyTTL(cfg.http.IdempotencyTTL)
		acceptor = acc
		reader = projections.NewReader(pool, log)
		if cfg.reconcile.After > 0 {
			rec := handlers.NewReconciler(pool, log, router.NewOutbox(nil), projections.NewReader(pool, log), relay, cfg.reconcile.ReconcilePolicy, logger)
			comps = append(comps, component{name: "reconciler", run: rec.Run})
		}
		addr = cfg.http.Addr
		comps = append(comps, component{name: "idempotency key purge", run: func(ctx context.Context) error {
			return purgeIdempotencyKeys(ctx, acc, pool, logger)
		}})
	}
	if addr != "" {
		srv := heraldhttp.NewServer(heraldhttp.Config{MaxBodyBytes: int64(cfg.http.MaxBodyBytes), Metrics: reg, Profiling: cfg.pprof, Secrets: cfg.secrets(),
			TrustedProxies: cfg.http.trustedProxies()},
			acceptor, reader, checks, logger)
		if p.api {
			srv.WithOperator(handlers.NewOperator(pool, log, router.NewOutbox(nil), router.NewPoisonQueue(cfg.amqp.URL, logger)))
			srv.WithAuth(apikeys.NewStore(pool), heraldhttp.RateLimit{
				Requests: cfg.http.RateLimit, Window: cfg.http.RateWindow, PerAddress: cfg.http.AddressLimit})
			srv.WithRebuilds(projections.NewJobs(ctx, projections.NewRebuilder(pool, log, 5000, logger), log))
		}
		c, err := httpComponent("http", addr, srv.Handler(), logger)
		if err != nil {
			return err
		}
		comps = append(comps, c)
	}
	return runComponents(ctx, logger, cfg.grace, comps...)
}

// purgeIdempotencyKeys forgets expired idempotency keys every ten minutes until ctx is done.
func purgeIdempotencyKeys(ctx context.Context, acc *handlers.Acceptor, pool *pgxpool.Pool, logger *slog.Logger) error {
	tick := time.NewTicker(10 * time.Minute)
	defer tick.Stop()
	for {
		n, err := acc.PurgeIdempotencyKeys(ctx, pool)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "purging expired idempotency keys failed", "error", err)
		case n > 0:
			logger.InfoContext(ctx, "expired idempotency keys purged", "keys", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// purgeOutbox deletes forwarded commands from the outbox every 30 seconds until ctx is done.
func purgeOutbox(ctx context.Context, relay *router.Relay, logger *slog.Logger) error {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if n, err := relay.PurgeOutbox(ctx); err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "purging forwarded commands failed", "error", err)
		} else if n > 0 {
			logger.DebugContext(ctx, "forwarded commands purged from the outbox", "commands", n)
		}
	}
}
