package webhooks

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook dispatcher's figures on /metrics. A nil *Metrics records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	pending    *prometheus.GaugeVec
	lagEvents  *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
}

// NewMetrics registers the webhook metrics with reg (a registry that has them already hands
// them back).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "webhook", Name: "deliveries_total",
			Help: "Requests made to webhook endpoints, by endpoint, trigger (live, retry, replay) and outcome (succeeded, failed).",
		}, []string{"endpoint", "trigger", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "webhook", Name: "request_duration_seconds",
			Help:    "How long webhook endpoints took to answer, or to fail.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "herald", Subsystem: "webhook", Name: "retries_pending",
			Help: "Failed deliveries waiting for their next try, by endpoint: a figure of the database, the same from every process.",
		}, []string{"endpoint"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "herald", Subsystem: "webhook", Name: "lag_events",
			Help: "Log positions between the newest event and an endpoint's live delivery, as seen by the process delivering to it.",
		}, []string{"endpoint"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "herald", Subsystem: "webhook", Name: "lag_seconds",
			Help: "Age of the newest event an endpoint's live delivery handled, while it had more to read (0 when caught up): how far behind the log it runs.",
		}, []string{"endpoint"}),
	}
	m.deliveries = register(reg, m.deliveries)
	m.duration = register(reg, m.duration)
	m.pending = register(reg, m.pending)
	m.lagEvents = register(reg, m.lagEvents)
	m.lagSeconds = register(reg, m.lagSeconds)
	return m
}

// register registers c with reg, or returns the collector registered already under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// observe counts the posts among outs.
func (m *Metrics) observe(endpoint string, outs []outcome) {
	if m == nil {
		return
	}
	for _, o := range outs {
		if !o.posted {
			continue
		}
		outcome := "failed"
		if o.succeeded() {
			outcome = "succeeded"
		}
		m.deliveries.WithLabelValues(endpoint, o.trigger, outcome).Inc()
		m.duration.WithLabelValues(endpoint).Observe(o.answer.Duration.Seconds())
	}
}

// observeCheckpoint counts one post of a checkpoint.
func (m *Metrics) observeCheckpoint(endpoint, trigger string, d time.Duration, ok bool) {
	if m == nil {
		return
	}
	outcome := "failed"
	if ok {
		outcome = "succeeded"
	}
	m.deliveries.WithLabelValues(endpoint, trigger, outcome).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// lag sets an endpoint's live delivery lag.
func (m *Metrics) lag(endpoint string, events int64, seconds float64) {
	if m == nil {
		return
	}
	m.lagEvents.WithLabelValues(endpoint).Set(float64(events))
	m.lagSeconds.WithLabelValues(endpoint).Set(seconds)
}

// forget drops an endpoint's lag, for a process that no longer delivers to it.
func (m *Metrics) forget(endpoint string) {
	if m == nil {
		return
	}
	m.lagEvents.DeleteLabelValues(endpoint)
	m.lagSeconds.DeleteLabelValues(endpoint)
}

// setPending sets the retries pending per endpoint, dropping endpoints that have none.
func (m *Metrics) setPending(counts map[string]int64) {
	if m == nil {
		return
	}
	m.pending.Reset()
	for id, n := range counts {
		m.pending.WithLabelValues(id).Set(float64(n))
	}
}
