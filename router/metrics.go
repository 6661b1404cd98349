package router

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
)

// addMetrics records watermill's handler, publisher and subscriber metrics under "herald".
func addMetrics(r *message.Router, reg prometheus.Registerer) {
	metrics.NewPrometheusMetricsBuilder(reg, "herald", "").AddPrometheusRouterMetrics(r)
}

// watermillLogger hands logger to watermill, with its chatty Info lines (a handler started, a
// consumer connected) at Debug: Herald's own lines say what matters at Info.
func watermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
