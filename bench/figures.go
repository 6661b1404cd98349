package bench

import (
	"fmt"
	"time"

	"github.com/herald-notify/herald"
)

// finish computes the report's figures from what the run recorded, then its verdict.
func (r *runner) finish(rep *Report, sinkRefusals int64) {
	defer func() { rep.Finished = time.Now().UTC() }()
	rep.Load = r.loadFigures()
	if r.sinks {
		rep.Delivery = r.deliveryFigures(sinkRefusals)
	}
	rep.Status = r.statusFigures()
	rep.Outcome = r.outcomeFigures()
	if rep.Delivery != nil {
		ceilingRatios(rep.Ceiling, rep.Delivery.DeliveredPerSec)
	}
	r.verdict(rep)
}

// loadFigures is what the API did with the POSTs: counts, errors, rate and latency.
func (r *runner) loadFigures() Load {
	l := Load{
		Requested: r.cfg.N, Posted: r.posted.Load(), Accepted: r.accepted.Load(), Errors: r.errs.total.Load(),
		APILatency: r.apiLatency.Summary(), MachineCPUBusy: r.cpuBusy, OtherCPUSeconds: r.otherCPU.Seconds(),
	}
	l.ErrorsByKind, l.ErrorSamples = r.errs.counts()
	if r.firstPost.Load() != 0 && r.lastAnswer.Load() != 0 {
		l.Seconds = r.t.at(r.lastAnswer.Load()).Sub(r.t.at(r.firstPost.Load())).Seconds()
	}
	if l.Seconds > 0 {
		l.AcceptedPerSec = float64(l.Accepted) / l.Seconds
	}
	if r.cfg.Rate > 0 {
		l.MaxStartDelayMS = float64(r.maxStartDelay.Load()) / float64(time.Millisecond)
		l.LateStarts = r.lateStarts.Load()
	}
	return l
}

// deliveryFigures is what reached the sinks: every accepted notification's arrivals, the time
// from its 202 to its first arrival, and the arrivals the bench did not expect.
func (r *runner) deliveryFigures(sinkRefusals int64) *Delivery {
	t := r.t
	d := &Delivery{Unexpected: t.unexpected.Load(), IDMismatches: t.hashMismatch.Load(), SinkRefusals: sinkRefusals}
	all := NewHistogram()
	byChannel := map[herald.Channel]*Histogram{}
	for _, ch := range herald.Channels {
		byChannel[ch] = NewHistogram()
	}
	for i := 0; i < t.n; i++ {
		n := int64(t.deliveries[i].Load())
		switch {
		case !t.accepted(i):
			d.Unexpected += n
			continue
		case n == 0:
			d.Undelivered++
			continue
		}
		d.Delivered++
		d.Duplicates += n - 1
		if t.deliveredHash[i].Load() != idHash(t.id(i)) {
			d.IDMismatches++
		}
		took := time.Duration(t.deliveredAt[i].Load() - t.acceptedAt[i].Load())
		all.Record(took)
		byChannel[channelOf(i, r.cfg.SMSRatio)].Record(took)
	}
	if last := t.lastDelivery.Load(); last != 0 && r.firstPost.Load() != 0 {
		d.Seconds = t.at(last).Sub(t.at(r.firstPost.Load())).Seconds()
	}
	if d.Seconds > 0 {
		d.DeliveredPerSec = float64(d.Delivered) / d.Seconds
	}
	d.AcceptToDelivery = all.Summary()
	d.AcceptToDeliveryByChannel = map[string]Summary{}
	for ch, h := range byChannel {
		if h.Count() > 0 {
			d.AcceptToDeliveryByChannel[string(ch)] = h.Summary()
		}
	}
	return d
}

// sampledAccepted counts the accepted notifications that were sampled: the ones the poller
// should have seen terminal.
func (r *runner) sampledAccepted() int64 {
	var n int64
	for i := 0; i < r.t.n; i++ {
		if r.t.accepted(i) && r.sampled(i) {
			n++
		}
	}
	return n
}

// statusFigures is what the poller saw of the sample on the status API.
func (r *runner) statusFigures() StatusFigures {
	p := r.poller
	st := StatusFigures{
		SampleEvery: r.cfg.Sample, Sampled: r.sampledAccepted(),
		SeenSent: p.seenSent.Load(), SeenFailed: p.seenFailed.Load(),
		StatusGETs: p.statusGETs.Load(), EventsGETs: p.eventsGETs.Load(), GETErrors: p.getErrors.Load(),
		AcceptToSent: p.acceptToSent.Summary(), ProjectionLag: p.projectionLag.Summary(),
		SentViaLogFold: p.viaLogFold.Load(), SweepGETs: r.sweepGETs.Load(),
	}
	st.NotSeen = st.Sampled - st.SeenSent - st.SeenFailed
	if n := p.gaps.Load(); n > 0 {
		st.MeanPollGapMS = float64(p.gapSum.Load()) / float64(n) / float64(time.Millisecond)
	}
	return st
}

// outcomeFigures is where the accepted notifications ended when the drain did. Lost is only
// counted for a run that was not interrupted: otherwise they had no time to arrive.
func (r *runner) outcomeFigures() Outcome {
	o := Outcome{
		Accepted: r.accepted.Load(), Sent: r.final.sent, Failed: r.final.failed, Settled: r.interrupted == "",
		DrainSeconds: r.drained.Seconds(), DrainTimedOut: r.drainTimedOut, Source: "read model",
	}
	if o.Settled {
		o.Lost = r.final.nonTerminal + max(0, o.Accepted-r.final.known)
	}
	if !r.sinks {
		o.Source = "status API"
	}
	return o
}

// ceilingRatios sets Herald's delivered rate as a share of each ceiling that was measured.
func ceilingRatios(c *CeilingReport, deliveredPerSec float64) {
	if c == nil || deliveredPerSec <= 0 {
		return
	}
	if c.Skeleton != nil && c.Skeleton.DeliveredPerSec > 0 {
		x := deliveredPerSec / c.Skeleton.DeliveredPerSec
		c.DeliveredOverSkeleton = &x
	}
	if c.AMQP != nil && c.AMQP.ConsumedPerSec > 0 {
		x := deliveredPerSec / c.AMQP.ConsumedPerSec
		c.DeliveredOverAMQP = &x
	}
	if c.PostgresBest > 0 {
		x := deliveredPerSec / (c.PostgresBest / 4)
		c.DeliveredOverPGCommits = &x
	}
}

// verdict fills in the problems (which fail the run) and the warnings.
func (r *runner) verdict(rep *Report) {
	if r.interrupted != "" {
		// What did not arrive yet says nothing: it had no time to.
		rep.Problems = append(rep.Problems, fmt.Sprintf("the run stopped after %d of %d POSTs, before the outcome was settled: %s",
			rep.Load.Posted, rep.Load.Requested, r.interrupted))
		rep.OK = false
		return
	}
	v := findings{rep}
	v.outcome()
	v.delivery()
	v.webhooks()
	v.watching()
	rep.OK = len(rep.Problems) == 0
}

// findings adds a settled run's problems and warnings to its report, in the order the table
// lists them.
type findings struct{ rep *Report }

// problem adds a finding that fails the run.
func (v findings) problem(format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
}

// warn adds a finding worth a look that fails nothing.
func (v findings) warn(format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf(format, args...))
}

// outcome finds what did not end as it should: nothing accepted, lost or failed notifications.
func (v findings) outcome() {
	l, o := v.rep.Load, v.rep.Outcome
	if l.Accepted == 0 {
		v.problem("no notification was accepted")
	}
	if o.Lost > 0 {
		v.problem("%d accepted notifications were neither sent nor failed after %s (lost)", o.Lost, secs(o.DrainSeconds))
	}
	if o.Failed > 0 {
		v.problem("%d notifications failed, though the sinks accept everything", o.Failed)
	}
}

// delivery finds what the sinks received wrongly: too little, too much, for someone else, or
// refused because Herald was misconfigured.
func (v findings) delivery() {
	d := v.rep.Delivery
	if d == nil {
		return
	}
	if d.Undelivered > 0 {
		v.problem("%d accepted notifications never reached a sink", d.Undelivered)
	}
	if d.IDMismatches > 0 {
		v.problem("%d deliveries carried another notification's id", d.IDMismatches)
	}
	if d.Duplicates > 0 {
		v.warn("duplicates: %d arrivals beyond a notification's first", d.Duplicates)
	}
	if d.Unexpected > 0 {
		v.warn("%d deliveries were for notifications whose POST was not answered 202, or for unknown recipients", d.Unexpected)
	}
	if d.SinkRefusals > 0 {
		v.problem("the SMS sink refused %d requests (credentials or form): Herald is misconfigured", d.SinkRefusals)
	}
}

// webhooks finds what the webhook endpoints received wrongly: events missing at a healthy
// endpoint, requests whose signature or payload a receiver refused, repeats and strangers.
func (v findings) webhooks() {
	w := v.rep.Webhooks
	if w == nil {
		return
	}
	if w.Missing > 0 {
		v.problem("%d of %d webhook events never reached the healthy endpoints (waited %s after the drain)", w.Missing, w.Expected, secs(w.WaitSeconds))
	}
	if w.BadSignatures > 0 {
		v.problem("%d webhook requests failed signature verification", w.BadSignatures)
	}
	if w.Undecodable > 0 {
		v.problem("%d signed webhook requests were not a payload whose event id is the webhook-id", w.Undecodable)
	}
	if w.Duplicates > 0 {
		v.warn("webhook duplicates: %d requests beyond an event's first at the healthy endpoints", w.Duplicates)
	}
	if w.Unexpected > 0 {
		v.warn("%d webhook events received are not notification events of the log when the drain ended", w.Unexpected)
	}

}

// watching finds what the load and the status API showed that is worth a look: refused POSTs,
// sampled notifications never seen terminal or seen before the projector caught up, and a
// ceiling that could not be measured.
func (v findings) watching() {
	l, st := v.rep.Load, v.rep.Status
	if l.Errors > 0 {
		v.warn("%d POSTs were not accepted: %v", l.Errors, countsByKind(l.ErrorsByKind))
	}
	if st.NotSeen > 0 {
		v.warn("%d sampled notifications were never seen terminal on the status API", st.NotSeen)
	}
	if st.SentViaLogFold > 0 {
		v.warn("%d sampled notifications read sent before the read model did (the API folded the log): the projector was behind", st.SentViaLogFold)
	}
	if c := v.rep.Ceiling; c != nil && c.Error != "" {
		// The ceiling is context for Herald's figures, not one of them: the load still stands.
		v.warn("ceiling: %s", c.Error)
	}
}
