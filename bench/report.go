package bench

import (
	"encoding/json"
	"io"
	"time"
)

// ReportVersion changes when a field of Report changes meaning or goes away.
const ReportVersion = 1

// Report is every figure of one run. Times are in seconds or milliseconds, as the field names
// say; rates are per second.
type Report struct {
	ReportVersion int         `json:"report_version"`
	Started       time.Time   `json:"started"`
	Finished      time.Time   `json:"finished"`
	Settings      Settings    `json:"settings"`
	Environment   Environment `json:"environment"`
	Load          Load        `json:"load"`
	// Delivery is what the bench's sinks received; absent with --url, which has none.
	Delivery *Delivery      `json:"delivery,omitempty"`
	Status   StatusFigures  `json:"status"`
	Outcome  Outcome        `json:"outcome"`
	Memory   *Memory        `json:"memory,omitempty"`
	Ceiling  *CeilingReport `json:"ceiling,omitempty"`
	// Webhooks is what the bench's webhook endpoints received; absent without --webhooks and
	// --webhook-failing.
	Webhooks *WebhookFigures `json:"webhooks,omitempty"`
	// Cost is what a notification cost PostgreSQL and RabbitMQ, for Herald's run and the
	// skeleton's (cost.go); spawn mode only.
	Cost *CostReport `json:"cost,omitempty"`
	// CheckpointsSealed is how many checkpoints the sealer signed in the run, with --ledger
	// sealed: none means the run did not measure the sealer.
	CheckpointsSealed *int `json:"checkpoints_sealed,omitempty"`
	// OK is false when a notification was lost, failed or never delivered, or the run failed;
	// Problems says why. Warnings are worth a look but fail nothing.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// LogDir holds the spawned processes' logs, when they were kept.
	LogDir string `json:"log_dir,omitempty"`
}

// Settings are the run's parameters.
type Settings struct {
	Mode           string   `json:"mode"` // "spawn" or "url"
	N              int      `json:"n"`
	SMSRatio       float64  `json:"sms_ratio"`
	HTML           bool     `json:"html,omitempty"`     // emails carry the HTML newsletter
	Template       bool     `json:"template,omitempty"` // sent by stored templates
	Loop           string   `json:"loop"`               // "open" (--rate) or "closed" (--concurrency)
	Rate           float64  `json:"rate,omitempty"`
	MaxInFlight    int      `json:"max_in_flight,omitempty"`
	Concurrency    int      `json:"concurrency"`
	RequestTimeout float64  `json:"request_timeout_seconds"`
	Sample         int      `json:"sample_every"`
	PollInterval   float64  `json:"poll_interval_ms"`
	PollRate       float64  `json:"poll_rate"`
	Drain          float64  `json:"drain_seconds"`
	Ceiling        bool     `json:"ceiling"`
	CeilingSeconds float64  `json:"ceiling_seconds,omitempty"`
	Spawn          []string `json:"spawn,omitempty"`
	Workers        int      `json:"workers,omitempty"`
	Env            []string `json:"env,omitempty"`
	URL            string   `json:"url,omitempty"`
	Database       string   `json:"database,omitempty"`
	VHost          string   `json:"vhost,omitempty"`
	Webhooks       int      `json:"webhooks,omitempty"`
	WebhookFailing bool     `json:"webhook_failing,omitempty"`
	// Ledger is --ledger: chained, sealed or off.
	Ledger string `json:"ledger"`
}

// Environment is the machine and the versions of what ran.
type Environment struct {
	Hostname        string `json:"hostname"`
	CPUs            int    `json:"cpus"`
	CPUModel        string `json:"cpu_model,omitempty"`
	Kernel          string `json:"kernel,omitempty"`
	OS              string `json:"os"`
	GoVersion       string `json:"go_version"`
	HeraldVersion   string `json:"herald_version"`
	PostgresVersion string `json:"postgres_version,omitempty"`
	RabbitMQVersion string `json:"rabbitmq_version,omitempty"`
	ErlangVersion   string `json:"erlang_version,omitempty"`
	// LoadAverage is /proc/loadavg (1, 5, 15 minutes) when the run started: other work on the
	// machine skews every figure.
	LoadAverage string `json:"load_average_at_start,omitempty"`
}

// Load is what the API did with the POSTs.
type Load struct {
	Requested int   `json:"requested"`
	Posted    int64 `json:"posted"`
	Accepted  int64 `json:"accepted"`
	Errors    int64 `json:"errors"`
	// ErrorsByKind counts refusals by status and error code ("503 unavailable") and failed
	// requests by cause ("transport: timeout").
	ErrorsByKind map[string]int64 `json:"errors_by_kind"`
	ErrorSamples []string         `json:"error_samples,omitempty"`
	// Seconds runs from the start of the first POST to the answer to the last one.
	Seconds        float64 `json:"seconds"`
	AcceptedPerSec float64 `json:"accepted_per_sec"`
	// APILatency is the time of every POST, from sending to the answer read, errors included.
	APILatency Summary `json:"api_latency"`
	// With --rate: how late a POST started against its schedule at worst, and how many started
	// more than 10 ms late (the in-flight bound was reached, or the bench fell behind).
	MaxStartDelayMS float64 `json:"max_start_delay_ms,omitempty"`
	LateStarts      int64   `json:"late_starts,omitempty"`
	// MachineCPUBusy is the share of the machine's CPU time that was busy while the POSTs ran,
	// whoever used it: near 1, the machine was the limit.
	MachineCPUBusy float64 `json:"machine_cpu_busy"`
	// OtherCPUSeconds is, over the same time, the busy time (steal included) not spent by
	// Herald's processes, the bench, PostgreSQL's (this run's backends and the cluster's shared
	// processes) or RabbitMQ's broker VM: mostly other work sharing the machine, which skews every
	// figure, but also some of the run's own (RabbitMQ's helper processes, the kernel's loopback
	// networking, processes that exited meanwhile; see CPUSplit). Spawn mode only.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
}

// Delivery is what reached the sinks.
type Delivery struct {
	// Delivered is accepted notifications that reached a sink at least once.
	Delivered   int64 `json:"delivered"`
	Undelivered int64 `json:"undelivered"`
	// Duplicates is arrivals beyond the first of a notification.
	Duplicates int64 `json:"duplicates"`
	// Unexpected is arrivals for notifications whose POST was not answered 202 (e.g. timed out),
	// or to recipients the bench never used; IDMismatches is arrivals whose notification id
	// was not the one the API answered for that recipient.
	Unexpected   int64 `json:"unexpected"`
	IDMismatches int64 `json:"id_mismatches"`
	// Seconds runs from the start of the first POST to the last first arrival.
	Seconds         float64 `json:"seconds"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	// AcceptToDelivery is, for every delivered notification, the time from its 202 to its first
	// arrival at a sink.
	AcceptToDelivery Summary `json:"accept_to_delivery"`
	// AcceptToDeliveryByChannel is the same for "email" and "sms" apart.
	AcceptToDeliveryByChannel map[string]Summary `json:"accept_to_delivery_by_channel"`
	// SinkRefusals is SMS requests the gateway refused (bad credentials or form).
	SinkRefusals int64 `json:"sink_refusals"`
}

// StatusFigures is what watching sampled notifications on the status API showed.
type StatusFigures struct {
	SampleEvery int   `json:"sample_every"`
	Sampled     int64 `json:"sampled"`
	SeenSent    int64 `json:"seen_sent"`
	SeenFailed  int64 `json:"seen_failed"`
	NotSeen     int64 `json:"not_seen"`
	StatusGETs  int64 `json:"status_gets"`
	EventsGETs  int64 `json:"events_gets"`
	GETErrors   int64 `json:"get_errors"`
	// MeanPollGapMS is the mean time between two status requests for one notification: the
	// resolution of the figures below.
	MeanPollGapMS float64 `json:"mean_poll_gap_ms"`
	// AcceptToSent is the time from the POST's 202 to the first status answer saying sent.
	AcceptToSent Summary `json:"accept_to_sent"`
	// ProjectionLag is the time from the NotificationSent event's time in the log to the first
	// status answer saying sent.
	ProjectionLag Summary `json:"projection_lag"`
	// SentViaLogFold counts status answers saying sent while the read model did not yet
	// (the API folds the log for notifications the projector has not reached); spawn mode only.
	SentViaLogFold int64 `json:"sent_via_log_fold"`
	// SweepGETs is the status requests of the final check with --url.
	SweepGETs int64 `json:"sweep_gets,omitempty"`
}

// Outcome is where the accepted notifications ended.
type Outcome struct {
	Accepted int64 `json:"accepted"`
	Sent     int64 `json:"sent"`
	Failed   int64 `json:"failed"`
	// Settled is false when the run was interrupted before the drain ended: Lost is then 0 and
	// means nothing.
	Settled bool `json:"settled"`
	// Lost is accepted notifications not sent or failed when the drain ended.
	Lost          int64   `json:"lost"`
	DrainSeconds  float64 `json:"drain_seconds"`
	DrainTimedOut bool    `json:"drain_timed_out"`
	// Source is where the statuses were read: the read model (spawn) or the status API (url).
	Source string `json:"source"`
}

// Memory is the resident memory of Herald's processes, and of the services.
type Memory struct {
	Processes []ProcessFigures `json:"processes"`
	// PeakRSSSum is the sum of the processes' own peaks (VmHWM), which need not coincide;
	// MaxSampledRSS the largest sum seen by sampling every second.
	PeakRSSSum    int64       `json:"peak_rss_sum_bytes"`
	MaxSampledRSS int64       `json:"max_sampled_rss_bytes"`
	Series        []RSSSample `json:"series"`
	// PostgresPSS is PostgreSQL's server processes and the bench database's backends;
	// RabbitMQPSS the Erlang VM (which serves every vhost). Proportional set sizes, sampled
	// every 5 s; 0 if unreadable.
	PostgresPSS  int64 `json:"postgres_max_pss_bytes"`
	RabbitMQPSS  int64 `json:"rabbitmq_max_pss_bytes"`
	BenchPeakRSS int64 `json:"bench_peak_rss_bytes"`
	// BenchCPUSeconds is the bench's own CPU time (HTTP client, sinks, poller) from the first
	// POST to the end of the drain, the ceiling excluded: taken from the machine Herald runs on.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
}

// ProcessFigures is one spawned process's memory and CPU.
type ProcessFigures struct {
	Role          string  `json:"role"`
	PID           int     `json:"pid"`
	PeakRSS       int64   `json:"peak_rss_bytes"`
	MaxSampledRSS int64   `json:"max_sampled_rss_bytes"`
	CPUSeconds    float64 `json:"cpu_seconds"`
}

// CeilingReport is the raw ceiling, the skeleton, and Herald's rate against them.
type CeilingReport struct {
	Seconds float64 `json:"seconds_each"`
	// Skeleton is the design's own ceiling (skeleton.go), and DeliveredOverSkeleton Herald's
	// delivered/s as a share of its delivered/s: the performance figure to read.
	Skeleton              *SkeletonReport `json:"skeleton,omitempty"`
	DeliveredOverSkeleton *float64        `json:"ratio_delivered_over_skeleton"`
	AMQP                  *AMQPCeiling    `json:"amqp,omitempty"`
	Postgres              []PGCeiling     `json:"postgres"`
	// PostgresBest is the highest inserts/s over the client counts.
	PostgresBest float64 `json:"postgres_best_inserts_per_sec"`
	// DeliveredOverAMQP is Herald's delivered/s over the AMQP end-to-end (consumed) msgs/s.
	DeliveredOverAMQP *float64 `json:"ratio_delivered_over_amqp_consumed"`
	// DeliveredOverPGCommits is Herald's delivered/s over a quarter of the best PostgreSQL
	// commits/s: a notification costs at least four commits.
	DeliveredOverPGCommits *float64 `json:"ratio_delivered_over_pg_commits_div_4"`
	Error                  string   `json:"error,omitempty"`
}

// WebhookFigures is what reached the run's webhook endpoints. The healthy ones should each get
// every event of every notification in the log, once; the failing one answers 500 to everything.
type WebhookFigures struct {
	// Endpoints is the healthy endpoints; Expected is the notification events in the log when
	// the drain ended, times Endpoints.
	Endpoints int   `json:"endpoints"`
	Expected  int64 `json:"expected"`
	// Arrived is expected events received at least once, Missing the rest when the wait ended.
	Arrived int64 `json:"arrived"`
	Missing int64 `json:"missing"`
	// Duplicates is requests beyond an event's first (same webhook-id); Unexpected is events
	// received that are not notification events of the log.
	Duplicates int64 `json:"duplicates"`
	Unexpected int64 `json:"unexpected"`
	// BadSignatures is requests refused because webhooks.Verify refused them (every endpoint,
	// the failing one included); Undecodable is signed requests whose body is not a payload whose
	// event id is the webhook-id.
	BadSignatures int64 `json:"bad_signatures"`
	Undecodable   int64 `json:"undecodable"`
	// EventToArrival is, for every event's first arrival at a healthy endpoint, the time from the
	// event's time in the log (the payload's timestamp) to its arrival.
	EventToArrival Summary `json:"event_to_arrival"`
	// Seconds runs from the start of the first POST to the last first arrival; ArrivedPerSec is
	// Arrived over it, every endpoint together.
	Seconds       float64 `json:"seconds"`
	ArrivedPerSec float64 `json:"arrived_per_sec"`
	// WaitSeconds is how long, after the drain, the bench waited for the last events at every
	// endpoint, the failing one's first attempts included (at most --drain); WaitTimedOut says
	// the wait ended with events missing.
	WaitSeconds  float64 `json:"wait_seconds"`
	WaitTimedOut bool    `json:"wait_timed_out"`
	// Failing is the endpoint that answers 500 to everything, with --webhook-failing.
	Failing *FailingWebhook `json:"failing,omitempty"`
}

// FailingWebhook is what the endpoint that answers 500 to everything received by the end of the
// wait: Herald's first attempts and its retries on the schedule.
type FailingWebhook struct {
	Requests int64 `json:"requests"`
	// Events is the distinct events among them; Requests over Events is the attempts per event.
	// Untried is the notification events of the log it never got a first request for: Herald
	// probes an endpoint that fails everything rather than post every event to it.
	Events  int64 `json:"events"`
	Untried int64 `json:"untried"`
	// EventToFirstAttempt is the time from an event to its first request, as for a healthy one.
	EventToFirstAttempt Summary `json:"event_to_first_attempt"`
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
