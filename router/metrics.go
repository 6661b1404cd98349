package router

import (
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
)

// addMetrics records watermill's handler, publisher and subscriber metrics under "herald".
func addMetrics(r *message.Router, reg prometheus.Registerer) {
	metrics.NewPrometheusMetricsBuilder(reg, "herald", "").AddPrometheusRouterMetrics(r)
}
