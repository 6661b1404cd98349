package router

import (
	"fmt"

	"github.com/herald-notify/herald"
)

// The priority lanes beside the normal ones. Normal notifications keep the seed's queues
// (QueueEmail, QueueSMS); high and low ones travel in queues of their own, with consumers of their
// own, so that a backlog in one lane never stands in front of another.
const (
	QueueEmailHigh = QueueEmail + "_high"
	QueueEmailLow  = QueueEmail + "_low"
	QueueSMSHigh   = QueueSMS + "_high"
	QueueSMSLow    = QueueSMS + "_low"
)

// QueueOf returns the work queue of channel c's lane for priority p; an empty priority is normal.
func QueueOf(c herald.Channel, p herald.Priority) (string, error) {
	normal, err := QueueFor(c)
	if err != nil {
		return "", err
	}
	switch p.OrNormal() {
	case herald.PriorityNormal:
		return normal, nil
	case herald.PriorityHigh:
		return normal + "_high", nil
	case herald.PriorityLow:
		return normal + "_low", nil
	}
	return "", fmt.Errorf("no lane for priority %q", p)
}

// WorkQueues lists every work queue: each channel's lanes, most urgent first.
func WorkQueues() []string {
	var qs []string
	for _, c := range herald.Channels {
		for _, p := range herald.Priorities {
			q, _ := QueueOf(c, p)
			qs = append(qs, q)
		}
	}
	return qs
}

// HandlerName is the name of the workers' handler of channel c's lane p: send_email for the
// normal lane, as before there were lanes, and send_email_high, send_email_low beside it.
func HandlerName(c herald.Channel, p herald.Priority) string {
	if p.OrNormal() == herald.PriorityNormal {
		return "send_" + string(c)
	}
	return "send_" + string(c) + "_" + string(p)
}

// concurrency is the number of commands each channel handles at once in lane p.
func (c WorkerConfig) concurrency(p herald.Priority) int {
	if p == herald.PriorityHigh && c.HighConcurrency > 0 {
		return c.HighConcurrency
	}
	return c.Concurrency
}
