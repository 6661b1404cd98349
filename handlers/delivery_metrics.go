package handlers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
)

// DeliveryMetrics are the deliverer's figures on /metrics: what each attempt came to, and how
// long a notification took from its acceptance to being sent. A nil *DeliveryMetrics records
// nothing.
type DeliveryMetrics struct {
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewDeliveryMetrics registers the delivery metrics with reg (a registry that has them already
// hands them back, so several deliverers in one process share them).
func NewDeliveryMetrics(reg prometheus.Registerer) *DeliveryMetrics {
	m := &DeliveryMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "delivery", Name: "attempts_total",
			Help: "Delivery attempts recorded, by channel and outcome: sent, retrying (failed, another attempt follows) or failed (for good).",
		}, []string{"channel", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "delivery", Name: "latency_seconds",
			Help:    "From a notification's acceptance (or its send_at) to its NotificationSent, by channel: what a client waits, retries included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}, []string{"channel"}),
	}
	m.attempts = register(reg, m.attempts)
	m.latency = register(reg, m.latency)
	return m
}

// register registers c with reg, or returns the collector registered already under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
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

// observe counts the attempt whose outcome n has just folded in. The latency runs from
// n.CreatedAt to n.UpdatedAt, both stamped by the database: one clock, whatever the worker's says.
func (m *DeliveryMetrics) observe(n herald.Notification) {
	if m == nil {
		return
	}
	channel := string(n.Channel)
	switch n.Status {
	case herald.StatusSent:
		m.attempts.WithLabelValues(channel, "sent").Inc()
		from := n.CreatedAt
		if n.SendAt.After(from) {
			// A scheduled send waits for its time by design: that wait is no delivery latency.
			from = n.SendAt
		}
		if !from.IsZero() {
			m.latency.WithLabelValues(channel).Observe(max(0, n.UpdatedAt.Sub(from).Seconds()))
		}
	case herald.StatusFailed:
		m.attempts.WithLabelValues(channel, "failed").Inc()
	default:
		m.attempts.WithLabelValues(channel, "retrying").Inc()
	}
}
