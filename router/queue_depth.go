package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

var queueMessagesDesc = prometheus.NewDesc("herald_queue_messages",
	"Messages ready in each of Herald's RabbitMQ queues (work lanes and poison_notifications), as RabbitMQ counts them at the scrape; a message a consumer holds unacknowledged is not counted.",
	[]string{"queue"}, nil)

// QueueDepths returns the collector of the messages waiting in Herald's queues, asked of
// RabbitMQ on the topology's connection at each scrape (a passive declare, which creates
// nothing). The depth of poison_notifications is the count of parked commands. While RabbitMQ is
// unreachable the figures are absent: herald_ready says why.
func (t *Topology) QueueDepths() prometheus.Collector { return queueDepths{t} }

type queueDepths struct{ t *Topology }

// Describe is part of prometheus.Collector.
func (q queueDepths) Describe(ch chan<- *prometheus.Desc) { ch <- queueMessagesDesc }

// Collect is part of prometheus.Collector.
func (q queueDepths) Collect(ch chan<- prometheus.Metric) {
	q.t.mu.Lock()
	conn := q.t.conn
	q.t.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return
	}
	amqpCh, err := conn.Channel()
	if err != nil {
		q.t.logger.Warn("metrics: open a channel to read the queues' depths", "error", err)
		return
	}
	defer amqpCh.Close()
	for _, name := range append(WorkQueues(), QueuePoison) {
		st, err := amqpCh.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			// A missing queue closes the channel; the topology declares it again.
			q.t.logger.Warn("metrics: read a queue's depth", "queue", name, "error", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(st.Messages), name)
	}
}
