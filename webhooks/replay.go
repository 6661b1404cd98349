package webhooks

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// ReplayRequest says which past events a replay sends again.
type ReplayRequest struct {
	// FromPosition is the first log position replayed (0 or 1: from the start).
	FromPosition int64
	// Since and Until bound the times the events occurred, both inclusive; zero leaves that end
	// open. Since is another way to say where to start.
	Since, Until time.Time
	// Types narrows the endpoint's own event types further; none keeps them all.
	Types []string
	// DryRun counts what would be sent and sends nothing.
	DryRun bool
}

// Validate returns an EINVALID naming each field of r that is wrong.
func (r ReplayRequest) Validate() error {
	f := events.Filter{FromPosition: r.FromPosition, Since: r.Since, Until: r.Until}
	fields := herald.ErrorFields(f.Validate())
	if fields == nil {
		fields = map[string]string{}
	}
	if _, err := checkEventTypes(r.Types, "types"); err != nil {
		for k, v := range herald.ErrorFields(err) {
			fields[k] = v
		}
	}
	if len(fields) > 0 {
		return herald.Invalid("the replay is invalid", fields)
	}
	return nil
}

// ReplayProgress is how far a replay has gone.
type ReplayProgress struct {
	// Position is the last log position read; ToPosition where the replay stops.
	Position, ToPosition int64
	// Matched counts the events for the endpoint so far; Sent those it accepted, Failed those
	// it did not (each left to the retry schedule).
	Matched, Sent, Failed int64
}

// ReplayReport is what a replay did.
type ReplayReport struct {
	EndpointID   string
	FromPosition int64
	ToPosition   int64
	DryRun       bool
	Matched      int64
	Sent         int64
	Failed       int64
	Duration     time.Duration
}

// replayPage is how many events a replay reads, and then sends, at a time.
const replayPage = 500

// Replay sends the endpoint's past events selected by r again, in log position order, with the
// ids they had (so a receiver that de-duplicates drops what it has), up to the newest event when
// it starts. It runs beside the live delivery and does not move its offset; a failed send is
// left to the retry schedule like any other. progress, if not nil, is called after each page.
// ENOTFOUND for an unknown endpoint, EINVALID for a bad request. A disabled endpoint is
// replayed to all the same: replaying is an operator's explicit ask.
func (s *Sender) Replay(ctx context.Context, endpointID string, r ReplayRequest, lanes int, progress func(ReplayProgress)) (ReplayReport, error) {
	if err := r.Validate(); err != nil {
		return ReplayReport{}, err
	}
	t, err := s.loadTarget(ctx, endpointID)
	if err != nil {
		return ReplayReport{}, err
	}
	types, _ := checkEventTypes(r.Types, "types")
	var want []string
	for _, typ := range events.NotificationTypes {
		if t.Takes(typ) && (len(types) == 0 || slices.Contains(types, typ)) {
			want = append(want, typ)
		}
	}
	log := events.NewLog(s.db)
	head, err := log.Head(ctx)
	if err != nil {
		return ReplayReport{}, err
	}
	start := time.Now()
	rep := ReplayReport{EndpointID: endpointID, FromPosition: max(r.FromPosition, 1), ToPosition: head, DryRun: r.DryRun}
	p := ReplayProgress{ToPosition: head}
	next := rep.FromPosition
	for next <= head && len(want) > 0 {
		var page []events.Recorded
		f := events.Filter{FromPosition: next, ToPosition: head, Since: r.Since, Until: r.Until, Types: want, Limit: replayPage}
		if err := log.Scan(ctx, f, func(rec events.Recorded) error { page = append(page, rec); return nil }); err != nil {
			return rep.with(p, start), fmt.Errorf("replay to endpoint %s: %w", endpointID, err)
		}
		if len(page) == 0 {
			break
		}
		next = page[len(page)-1].Position + 1
		p.Position = page[len(page)-1].Position
		p.Matched += int64(len(page))
		if !r.DryRun {
			// Read again for each page: a replay posts where the endpoint is now, signed with
			// its secrets now, and ends if it was deleted.
			if t, err = s.loadTarget(ctx, endpointID); err != nil {
				return rep.with(p, start), err
			}
			if err := s.replayPage(ctx, t, page, lanes, &p); err != nil {
				return rep.with(p, start), err
			}
		}
		if progress != nil {
			progress(p)
		}
		if ctx.Err() != nil {
			return rep.with(p, start), ctx.Err()
		}
	}
	return rep.with(p, start), nil
}

// with returns r with the counts of p and the time since start: what a replay had done when it
// ended, whether it finished or was stopped.
func (r ReplayReport) with(p ReplayProgress, start time.Time) ReplayReport {
	r.Matched, r.Sent, r.Failed = p.Matched, p.Sent, p.Failed
	r.Duration = time.Since(start)
	return r
}

// replayPage sends one page of a replay and records it.
func (s *Sender) replayPage(ctx context.Context, t target, page []events.Recorded, lanes int, p *ReplayProgress) error {
	attempts := make([]int, len(page))
	for i := range attempts {
		attempts[i] = 1
	}
	outs := s.postAll(ctx, t, page, attempts, TriggerReplay, lanes)
	h, err := s.recordIn(ctx, t.ID, outs)
	if err != nil {
		return err
	}
	for _, o := range outs {
		switch {
		case o.succeeded():
			p.Sent++
		case o.posted:
			p.Failed++
		}
	}
	s.disableIfFailing(ctx, t.ID, h)
	return nil
}
