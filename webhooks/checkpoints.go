package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/herald-notify/herald/ledger"
)

// checkpointBatch is how many checkpoints a live delivery reads at a time. The sealer writes one
// every few seconds at most, so a batch is nearly always one.
const checkpointBatch = 50

// checkpointRetry is where an endpoint's live delivery of checkpoints stands with the one it
// failed to deliver: how many tries it has had, and when the next is due.
type checkpointRetry struct {
	seq     int64
	attempt int
	due     time.Time
}

// liveCheckpoints posts to t, in seq order, the signed checkpoints past its checkpoint offset
// and moves the offset past each one the endpoint took, until one fails or none is left.
//
// Checkpoints go out one at a time and a failed one holds back the later ones: each commits to
// everything the earlier ones did, and a receiver keeping a witness's copy wants them in order.
// A failed checkpoint is tried again on the sender's schedule (its last wait repeating, since a
// later checkpoint cannot be delivered past it), at least once: the offset moves only after a
// 2xx, so a dispatcher that dies between the answer and the move posts it again, with the same
// webhook-id. The state of the retries is this live delivery's: another process that takes
// the endpoint over starts them again at the first try.
func (d *Dispatcher) liveCheckpoints(ctx context.Context, t target, r *checkpointRetry) error {
	if !r.due.IsZero() && d.sender.now().Before(r.due) {
		return nil
	}
	cps, err := ledger.After(ctx, d.db, t.CheckpointSeq, checkpointBatch)
	if err != nil {
		return err
	}
	for _, cp := range cps {
		if ctx.Err() != nil {
			return nil
		}
		if r.seq != cp.Seq {
			*r = checkpointRetry{seq: cp.Seq}
		}
		r.attempt++
		trigger := TriggerLive
		if r.attempt > 1 {
			trigger = TriggerRetry
		}
		if _, err := d.sender.postCheckpoint(context.WithoutCancel(ctx), t, cp, trigger); err != nil {
			wait := d.cfg.Probe
			if n := len(d.sender.schedule); n > 0 {
				wait = d.sender.schedule[min(r.attempt, n)-1]
			}
			r.due = d.sender.now().Add(wait)
			d.cfg.Logger.Warn("webhook checkpoint delivery failed; it is tried again", "endpoint", t.ID, "seq", cp.Seq,
				"attempt", r.attempt, "retry_in", wait, "error", err)
			return nil
		}
		tag, err := d.db.Exec(context.WithoutCancel(ctx), `UPDATE webhook_endpoints SET checkpoint_seq = $3
			WHERE id = $1 AND lease_owner = $2 AND checkpoint_seq = $4`, t.ID, d.cfg.Owner, cp.Seq, t.CheckpointSeq)
		if err != nil {
			return fmt.Errorf("move the checkpoint offset of endpoint %s: %w", t.ID, err)
		}
		if tag.RowsAffected() != 1 {
			return errLeaseLost
		}
		t.CheckpointSeq = cp.Seq
		*r = checkpointRetry{}
	}
	return nil
}
