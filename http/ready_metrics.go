package http

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// readyDesc is herald_ready: /readyz as a metric, so that an alert can say which part of which
// process is not ready without anyone polling /readyz.
var readyDesc = prometheus.NewDesc("herald_ready",
	"1 while the named readiness check of this process passes, 0 while it fails: the checks of /readyz, asked at the scrape.",
	[]string{"check"}, nil)

// readiness asks the process's checks at each scrape, bounded as /readyz bounds them.
type readiness []Check

// Describe is part of prometheus.Collector.
func (r readiness) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

// Collect is part of prometheus.Collector.
func (r readiness) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, c := range r {
		v := 1.0
		if err := c.Ready(ctx); err != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, c.Name)
	}
}
