package router

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
)

// scrapeTimeout bounds the database and broker reads a scrape makes: a slow dependency leaves a
// figure out of one scrape rather than hanging Prometheus's request.
const scrapeTimeout = 2 * time.Second

var (
	projectionLagDesc = prometheus.NewDesc("herald_projection_lag_events",
		"Events of the log a read model has yet to apply, read from the database at the scrape: the same from every projector process.",
		[]string{"projection"}, nil)
	projectionStoppedDesc = prometheus.NewDesc("herald_projection_stopped",
		"1 while a read model is stopped at a gap in a stream's versions (it waits for a rebuild), else 0.",
		[]string{"projection"}, nil)
)

// projectionLag reads where each projection stands against the log at each scrape. It reads
// the database, not the projector's memory, so a standby projector reports the same as the one
// that runs, and a projector that hangs shows its lag growing.
type projectionLag struct {
	log    *events.Log
	logger *slog.Logger
}

// Describe is part of prometheus.Collector.
func (p projectionLag) Describe(ch chan<- *prometheus.Desc) {
	ch <- projectionLagDesc
	ch <- projectionStoppedDesc
}

// Collect is part of prometheus.Collector.
func (p projectionLag) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	statuses, err := projections.Statuses(ctx, p.log)
	if err != nil {
		p.logger.Warn("metrics: read the projections' lag", "error", err)
		return
	}
	for _, s := range statuses {
		stopped := 0.0
		if s.Stopped != "" {
			stopped = 1
		}
		ch <- prometheus.MustNewConstMetric(projectionLagDesc, prometheus.GaugeValue, float64(s.Lag), s.Name)
		ch <- prometheus.MustNewConstMetric(projectionStoppedDesc, prometheus.GaugeValue, stopped, s.Name)
	}
}
