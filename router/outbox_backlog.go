package router

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	outboxBacklogDesc = prometheus.NewDesc("herald_outbox_backlog",
		"SendNotification commands in the outbox the relay has not forwarded to RabbitMQ yet, read from the database at the scrape.",
		nil, nil)
	outboxOldestDesc = prometheus.NewDesc("herald_outbox_oldest_age_seconds",
		"Age of the oldest command the relay has not forwarded yet (0 when none waits): how long a notification has been accepted and not queued.",
		nil, nil)
)

// Backlog returns the collector of the outbox's backlog: what the relay, with its partitions,
// has yet to forward, counted by the database at each scrape, so every API process reports the
// same and a relay that hangs shows its backlog growing.
func (r *Relay) Backlog() prometheus.Collector { return outboxBacklog{r} }

type outboxBacklog struct{ r *Relay }

// Describe is part of prometheus.Collector.
func (b outboxBacklog) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxBacklogDesc
	ch <- outboxOldestDesc
}

// Collect is part of prometheus.Collector. It reads the rows Waiting reads, the same way: past
// each partition's own offset.
func (b outboxBacklog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var n int64
	var age float64
	// created_at is watermill's timestamp without time zone, written with the database's clock
	// in the session's zone: it is compared with the same clock, in the same zone.
	err := b.r.pool.QueryRow(ctx, `
WITH parts AS MATERIALIZED (
	SELECT k, g.last_processed_transaction_id AS tx, coalesce(g.offset_acked, 0) AS acked
	FROM generate_series(0, $1::int - 1) k
	LEFT JOIN outbox_offsets g
		ON g.consumer_group = CASE WHEN $1::int = 1 THEN 'relay' ELSE 'relay-' || k || '-of-' || $1::int END
)
SELECT count(*), coalesce(extract(epoch FROM localtimestamp - min(o.created_at)), 0)::float8
FROM outbox o JOIN parts p ON p.k = o."offset" % $1::int
WHERE (o.transaction_id, o."offset") > (
		SELECT coalesce(tx, '0'::xid8), CASE WHEN tx IS NULL THEN 0 ELSE acked END
		FROM parts ORDER BY tx NULLS FIRST, acked LIMIT 1)
	AND (p.tx IS NULL OR (o.transaction_id, o."offset") > (p.tx, p.acked))`, b.r.partitions()).Scan(&n, &age)
	if err != nil {
		b.r.logger.Warn("metrics: read the outbox backlog", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(outboxBacklogDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(outboxOldestDesc, prometheus.GaugeValue, max(0, age))
}
