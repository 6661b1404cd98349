package bounces

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bounce listener's figures on /metrics. A nil *Metrics records nothing.
type Metrics struct {
	reports *prometheus.CounterVec
}

// NewMetrics registers the bounce metrics with reg (a registry that has them already hands them
// back).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "bounce", Name: "reports_total",
		Help: "Mail received by the bounce listener, by outcome (hard_bounce, soft_bounce, complaint, duplicate, ignored, unmatched, unparsable, failed).",
	}, []string{"outcome"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					c = existing
				}
			}
		}
	}
	return &Metrics{reports: c}
}

// count records a report's outcome.
func (m *Metrics) count(outcome string) {
	if m == nil {
		return
	}
	m.reports.WithLabelValues(outcome).Inc()
}
