package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald/bench"
)

// benchLong is the help of bench: what it measures and how.
const benchLong = `bench sends notifications to a Herald over HTTP and measures what happens to them: how
fast the API accepts them, how fast they reach an SMTP server and an SMS gateway, how long until
the status API says sent, how far the read model lags the log, and how much memory Herald uses.
In the same run it measures what PostgreSQL and RabbitMQ do raw, through the same client
libraries, and prints Herald's delivery rate as a share of that.

By default bench starts Herald itself, so that a run is reproducible: it creates a fresh
database (migrated) and a RabbitMQ vhost, starts its own loopback SMTP server and SMS gateway,
makes an API key, and runs Herald's processes (--spawn) from this executable with HERALD_*
pointing at them, HERALD_RATE_LIMIT=0 and HERALD_LOG_LEVEL=warn; --env adds or overrides
variables, to compare settings. The processes' logs go to a temporary directory, kept and
printed when the run fails. At the end bench stops them with SIGTERM and drops the database and
the vhost (unless --keep).

With --url and --api-key bench drives a Herald that is already running. It then has no sinks:
it measures only what the API shows (acceptance, API latency, sampled status), and settles the
outcome by asking the status of every accepted notification. The ceiling still runs, on a
scratch database and vhost made through --admin-database-url and --rabbitmq-api
(--ceiling=false to skip it).

The load: -n notifications, a share --sms-ratio of them SMS, each to its own recipient, with a
small template and two variables; with --html each email carries instead an HTML newsletter of
about 20 KB with ten variables, whose text part Herald reads back from the rendered HTML. With
--template the run stores those templates first (herald bench starting Herald only) and each
request names one instead of carrying it, with the same variables. With
--rate bench starts requests on a fixed schedule (open loop) whatever the answers, at most
--max-in-flight at once; otherwise --concurrency clients each send their next request when the
last is answered (closed loop). One HTTP client with keep-alive.

The figures:
  accepted/s          202 answers ÷ time from the first POST's start to the last POST's answer
  API latency         every POST, from sending to the answer read, errors included: p50/p95/p99/max
  errors              POSTs not answered 202, by status and error code or transport cause
  delivered/s         notifications received by a sink ÷ time from the first POST to the last
                      first arrival: the end-to-end rate
  accept→delivery     every notification: from its 202 to its first arrival at a sink
  duplicates          arrivals beyond a notification's first (matched by recipient, checked
                      against the X-Herald-Notification-Id / idempotency-token id)
  accept→sent         one notification in --sample (picked by a hash of its number, so from
                      both channels), from its 202 to the first status answer saying sent,
                      polled every --poll-interval (watching starts when a sink received it:
                      status cannot say sent before); at most --poll-rate GETs/s in all, which
                      the report counts: they are load on Herald too
  projection lag      the same notifications: from the NotificationSent event's time in the log
                      to the first status answer saying sent
  lost, failed        after the load, bench waits up to --drain for every accepted notification
                      to arrive and be sent or failed in the read model; lost is what is not
  peak RSS            each Herald process's VmHWM, their sum, and the largest sum sampled every
                      second (with a time series in the JSON); PostgreSQL's and RabbitMQ's PSS
  skeleton            before the load, for --ceiling-duration: the durable steps of a notification
                      written plainly with pgx and amqp091 (event and outbox row in one
                      transaction, publish with a confirm, consume, attempt and outcome
                      appended, the SMTP or SMS sink, status and history projected with the
                      offset), --concurrency clients accepting and 16 workers delivering; its
                      delivered/s is the design's own ceiling
  ceiling             before the load, for --ceiling-duration each: persistent messages
                      published with confirms by --concurrency channels to a durable quorum queue
                      and consumed meanwhile with manual acks (prefetch 50); single-row INSERT
                      commits from 1, 4, 16 and --concurrency clients (at most 64); then
                      bench waits, up to a minute, for the machine to be under 25% busy
                      again, so that the load does not also measure the ceiling's aftermath
  ratios              delivered/s ÷ the skeleton's delivered/s, the figure to read; delivered/s ÷
                      AMQP consumed msgs/s, and delivered/s ÷ (best PostgreSQL
                      commits/s ÷ 4), since a notification costs at least four commits
  cost                per delivered notification, for Herald's run and the skeleton's alike
                      (herald bench starting Herald only): PostgreSQL commits and rollbacks,
                      rows inserted/updated/deleted (and by table) and fetched, from the
                      scratch database's pg_stat_database and pg_stat_user_tables; statements
                      (and the most called) when pg_stat_statements is loaded; AMQP publishes,
                      confirms, deliveries, acks, redeliveries and unroutable returns, from the
                      vhost's message stats. Counted before and after each run, while its
                      processes are up, once the counts have not moved for 11 s (they are
                      reported late); commits include idle polling (its rate before the load
                      is shown) and leave out the bench's own queries
  CPU (ms)            per delivered notification, in each column, over the same window as its
                      counts: Herald's from the settled counts with Herald up and idle before
                      the load to those after every notification was delivered (and webhooks
                      waited for), Herald still up; the skeleton's from the settled counts with
                      its tables and queue made, before it starts, to those once all it
                      accepted was delivered and projected, its goroutines still up. The
                      machine's busy time (/proc/stat: user, nice, system, irq, softirq; steal
                      time is shown apart, not as busy) split into herald (the spawned
                      processes), PostgreSQL (the run database's backends and autovacuum workers,
                      and the cluster's shared processes, which serve every database:
                      postmaster, checkpointer, walwriter, background writer, autovacuum
                      launcher, parallel workers; the bench's own queries included: one per
                      notification to check the outcome, and the meter's snapshots every 500 ms
                      while settling), RabbitMQ (the whole broker VM, beam.smp, which serves
                      every vhost; the meter's management API calls included), bench (the bench
                      process: load, sinks, poller, meter; for the skeleton, which runs inside
                      it, the skeleton with them) and other (busy time none of these explains:
                      other programs, the kernel, and some of the run's own work: RabbitMQ's
                      helper processes such as erl_child_setup, inet_gethost and epmd, loopback
                      networking in the kernel, processes that exited during the window). So
                      other is not "not this run's", nor the groups only this run's. Beside each
                      figure, "(≈X idle)" is what the window would have cost with nothing sent:
                      the CPU per second by group over the settling stretch just before the load
                      (the one that gives idle commits; for the skeleton, before it starts),
                      times the window, per notification; the "idle CPU" row is that rate. "-"
                      when nothing was delivered
  webhooks            with --webhooks N: N loopback endpoints, registered in the database before
                      Herald starts, each taking every notification event; each request's
                      Standard Webhooks signature is verified (refused and counted when bad)
                      and its payload read. After the drain bench waits up to --drain more for
                      every notification event of the log to reach every endpoint: arrived,
                      missing, duplicates (same webhook-id again), event→arrival (the payload's
                      event time to its arrival: p50/p90/p99/max). --webhook-failing adds an
                      endpoint answering 500 to everything; bench waits for its first attempt
                      of every event too, and counts the requests it got (retries included).
                      Herald then runs with HERALD_WEBHOOK_ALLOW_PRIVATE=true,
                      HERALD_WEBHOOK_ALLOW_HTTP=true and HERALD_WEBHOOK_RETRY_SCHEDULE=1s,2s,4s
                      (--env overrides them)
  ledger              what the tamper-evident log cost is the difference between runs that
                      differ in --ledger alone: chained (the default: the chain trigger, as
                      Herald runs without a checkpoint key), sealed (the chain, and the sealer
                      with a key and a checkpoint file the run makes and removes; the header
                      counts the checkpoints signed, one every HERALD_CHECKPOINT_INTERVAL, 10 s,
                      while the log grows) or off (the chain trigger disabled in the run's
                      database, its columns given defaults: a baseline, whose log does not
                      verify)

Output is a table, or with -o json one JSON object with every figure, the settings, the
versions of Go, PostgreSQL and RabbitMQ, and the machine; --json-file writes that object to a
file as well, beside the table. Progress goes to stderr (-q: none).
bench exits with status 1 when a notification was lost, failed or never delivered, none was
accepted, a delivery carried another notification's id, the SMS sink refused Herald's requests,
a webhook event never reached a healthy endpoint, a webhook request was badly signed or
unreadable, a process died, or the run could not be made; POSTs refused, duplicates and a
ceiling that could not be measured are reported but fail nothing.`

// benchFlags are bench's flags besides the run's configuration: what to print, and where.
type benchFlags struct {
	output   *format
	jsonFile string
	quiet    bool
}

// benchCommand measures Herald end to end against the machine's raw ceiling, so that a change
// to Herald is judged by numbers, not impressions.
func benchCommand() *cobra.Command {
	cfg := bench.DefaultConfig()
	var bf benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Herald's throughput and latencies end to end, against the machine's raw ceiling",
		Long:  benchLong,
		Example: `  herald bench -n 20000 --rate 500
  herald bench -n 30000 --concurrency 32 -o json > run.json
  herald bench --spawn serve,worker,projector --workers 2 --env HERALD_RELAY_BATCH_SIZE=100
  herald bench -n 24000 --rate 400 --webhooks 1 --webhook-failing
  herald bench -n 4500 --rate 150 --html
  herald bench -n 12000 --rate 400 --ceiling=false --ledger sealed
  herald bench --url http://127.0.0.1:8080 --api-key "$HERALD_KEY" --ceiling=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, &cfg, bf) },
	}
	f := cmd.Flags()
	registerBenchConfig(f, &cfg)
	bf.output = registerFormat(f, formatTable, formatJSON)
	f.StringVar(&bf.jsonFile, "json-file", "", "also write the JSON report to this file")
	f.BoolVarP(&bf.quiet, "quiet", "q", false, "print no progress on stderr")
	// Every flag says what one run does: none reads the environment, or a variable left set
	// would silently change every later run.
	f.VisitAll(func(fl *pflag.Flag) { markArguments(f, fl.Name) })
	def := bench.DefaultConfig()
	markSecret(f, "admin-database-url", secretURL, def.AdminDatabaseURL)
	markSecret(f, "rabbitmq-api", secretURL, def.RabbitMQAPI)
	markSecret(f, "amqp-url", secretURL, def.AMQPURL)
	markSecret(f, "url", secretURL, "")
	markSecret(f, "api-key", secretValue, "")
	return cmd
}

// registerBenchConfig binds the run's configuration to bench's flags, its defaults bench's own.
func registerBenchConfig(f *pflag.FlagSet, cfg *bench.Config) {
	f.IntVarP(&cfg.N, "notifications", "n", cfg.N, "number of notifications to send")
	f.Float64Var(&cfg.SMSRatio, "sms-ratio", cfg.SMSRatio, "share of the notifications that are SMS, 0 to 1; the rest are emails")
	f.BoolVar(&cfg.HTML, "html", cfg.HTML, "send each email with an HTML newsletter of about 20 KB (ten variables) as its template, instead of a line of text")
	f.BoolVar(&cfg.Template, "template", cfg.Template, "store the load's templates first and send each notification by its template's name, with the same variables")
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests per second, sent on schedule (open loop); 0: closed loop with --concurrency clients")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "with --rate, the most requests outstanding at once; a request that waits for one starts late, and is counted")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "closed-loop clients; also the AMQP publishers and a PostgreSQL client count of the ceiling")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "time limit of one API request")
	f.IntVar(&cfg.Sample, "sample", cfg.Sample, "watch one notification in this many on the status API (10: about 10%); 0: none")
	f.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "how often a watched notification's status is asked")
	f.Float64Var(&cfg.PollRate, "poll-rate", cfg.PollRate, "most status and events requests per second the watching makes in all")
	f.DurationVar(&cfg.Drain, "drain", cfg.Drain, "how long to wait after the load for every accepted notification to arrive and be terminal; with webhooks, as long again for their events")
	f.BoolVar(&cfg.Ceiling, "ceiling", cfg.Ceiling, "measure the skeleton and the raw AMQP and PostgreSQL ceiling before the load")
	f.DurationVar(&cfg.CeilingDuration, "ceiling-duration", cfg.CeilingDuration, "how long each ceiling measurement runs")
	f.StringSliceVar(&cfg.Spawn, "spawn", cfg.Spawn, "Herald processes to start, comma-separated: all, or serve,worker,projector (all,worker adds worker processes to all)")
	f.IntVar(&cfg.Workers, "workers", cfg.Workers, "number of herald worker processes, with worker in --spawn")
	f.StringArrayVar(&cfg.Env, "env", nil, "KEY=VALUE added to the spawned processes' environment, after bench's own (repeatable)")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "how long a spawned process may take to answer /readyz")
	f.StringVar(&cfg.AdminDatabaseURL, "admin-database-url", cfg.AdminDatabaseURL, "PostgreSQL URL of an account that may create databases; bench makes its own database there")
	f.StringVar(&cfg.RabbitMQAPI, "rabbitmq-api", cfg.RabbitMQAPI, "RabbitMQ management API URL, with credentials; bench makes its own vhost there")
	f.StringVar(&cfg.AMQPURL, "amqp-url", cfg.AMQPURL, "RabbitMQ AMQP URL; bench replaces its vhost with its own")
	f.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the database, the vhost and the logs after the run")
	f.IntVar(&cfg.Webhooks, "webhooks", cfg.Webhooks, "webhook endpoints, each taking every notification event, that bench registers and checks (needs all in --spawn); 0: none")
	f.BoolVar(&cfg.WebhookFailing, "webhook-failing", cfg.WebhookFailing, "also register a webhook endpoint that answers 500 to everything, so that Herald retries it")
	f.StringVar(&cfg.Ledger, "ledger", cfg.Ledger, "the tamper-evident log to run Herald with: chained (the chain trigger, as without a checkpoint key), sealed (the chain and the sealer, with a key the run makes) or off (the chain trigger disabled in the run's database: a baseline to measure the ledger's cost against)")
	f.StringVar(&cfg.URL, "url", "", "drive the Herald running at this base URL instead of starting one (no sinks: see above)")
	f.StringVar(&cfg.APIKey, "api-key", "", "with --url, an API key with the send and read scopes")
}

// runBench runs the benchmark, prints its report, and fails when the run found a problem.
func runBench(cmd *cobra.Command, cfg *bench.Config, bf benchFlags) error {
	if cmd.Flags().Changed("url") && (cmd.Flags().Changed("spawn") || cmd.Flags().Changed("workers") || cmd.Flags().Changed("env") || cmd.Flags().Changed("keep")) {
		return errors.New("--url drives a running Herald: --spawn, --workers, --env and --keep are for the Herald bench starts itself")
	}
	cfg.HeraldVersion = version
	var progress io.Writer = cmd.ErrOrStderr()
	if bf.quiet {
		progress = nil
	}
	rep, err := bench.Run(cmd.Context(), *cfg, progress)
	if rep == nil {
		return err
	}
	w := cmd.OutOrStdout()
	var werr error
	if *bf.output == formatJSON {
		werr = rep.WriteJSON(w)
	} else {
		werr = rep.WriteTable(w)
	}
	if bf.jsonFile != "" {
		werr = errors.Join(werr, writeReportFile(bf.jsonFile, rep))
	}
	switch {
	case err != nil && cmd.Context().Err() != nil:
		return errors.New("interrupted")
	case err != nil:
		return err
	case werr != nil:
		return werr
	case !rep.OK:
		return fmt.Errorf("bench failed: %s", strings.Join(rep.Problems, "; "))
	}
	return nil
}

// writeReportFile writes the JSON report to path, for --json-file.
func writeReportFile(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--json-file: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("--json-file: %w", err)
	}
	return f.Close()
}
