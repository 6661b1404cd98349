package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Owner names this dispatcher in the endpoints' leases; unique per process.
	Owner string
	// Lanes is how many requests one endpoint's live delivery has under way at once
	// (HERALD_WEBHOOK_CONCURRENCY); the events of one notification always share a lane.
	Lanes int
	// Batch is how many events of the log a live delivery reads at a time.
	Batch int
	// Poll is how often a caught-up live delivery looks for new events, and the dispatcher for
	// due retries and endpoints to take.
	Poll time.Duration
	// Lease is how long an endpoint stays a dispatcher's without it renewing: how soon another
	// process takes over the live delivery of one that died.
	Lease time.Duration
	// RetryBatch is how many due retries the dispatcher takes at a time.
	RetryBatch int
	// RequestTimeout is the longest a request to an endpoint may take (the client's timeout):
	// taken retries are leased for long enough to post them.
	RequestTimeout time.Duration
	// TripAfter is how many live posts in a row may fail before the live delivery stops
	// posting every event and probes with one at a time; Probe is the wait between probes.
	TripAfter int
	Probe     time.Duration
	Logger    *slog.Logger
}

func (c DispatcherConfig) withDefaults() DispatcherConfig {
	if c.Lanes < 1 {
		c.Lanes = 8
	}
	if c.Batch < 1 {
		c.Batch = 500
	}
	if c.Poll <= 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.Lease <= 0 {
		c.Lease = 15 * time.Second
	}
	if c.RetryBatch < 1 {
		c.RetryBatch = 200
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultTimeout
	}
	if c.TripAfter < 1 {
		c.TripAfter = 20
	}
	if c.Probe <= 0 {
		c.Probe = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Dispatcher delivers the log to the webhook endpoints. Each enabled endpoint is a consumer of
// the log with its own offset (webhook_endpoints.cursor_*), read in the log's delivery order by
// the one dispatcher that holds the endpoint's lease; every dispatcher takes the due retries of
// any endpoint, under a short lease of their own. Several processes can run one each: an
// endpoint's live delivery runs in one of them at a time, and moves to another within Lease of
// its holder dying.
type Dispatcher struct {
	db     DB
	log    *events.Log
	sender *Sender
	cfg    DispatcherConfig

	mu       sync.Mutex
	running  map[string]bool // endpoints whose live delivery runs here
	retrying map[string]bool // endpoints whose retries are being sent here
	lastErr  error
}

// NewDispatcher returns a dispatcher sending through sender.
func NewDispatcher(db DB, sender *Sender, cfg DispatcherConfig) *Dispatcher {
	return &Dispatcher{db: db, log: events.NewLog(db), sender: sender, cfg: cfg.withDefaults(), running: map[string]bool{},
		retrying: map[string]bool{}}
}

// Run delivers until ctx is done, then finishes the requests under way, records them, and
// releases its endpoints so that another process takes them at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.retryLoop(ctx)
	}()
	// Leases are renewed at least three times within their length, however slow the polling.
	tick := time.NewTicker(min(d.cfg.Poll*10, d.cfg.Lease/3))
	defer tick.Stop()
	for {
		ids, err := d.claim(ctx)
		d.setErr(err)
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhook dispatcher: take endpoints", "error", err)
		}
		for _, id := range ids {
			if d.start(id) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer d.stop(id)
					d.live(ctx, id)
				}()
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			d.release()
			d.sender.client.CloseIdleConnections()
			return nil
		case <-tick.C:
		}
	}
}

// Ready is nil while the dispatcher can reach its endpoints' table.
func (d *Dispatcher) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

func (d *Dispatcher) setErr(err error) {
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
}

func (d *Dispatcher) start(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[id] {
		return false
	}
	d.running[id] = true
	return true
}

func (d *Dispatcher) stop(id string) {
	d.mu.Lock()
	delete(d.running, id)
	d.mu.Unlock()
	d.sender.metrics.forget(id)
}

// claim renews the leases this dispatcher holds and takes half of the endpoints nobody holds (or
// whose holder's lease ran out), at least one: dispatchers asking together share them out, and
// one alone has them all within a few rounds (taking one a round, a process starting alone with
// fifty endpoints left the last one waiting fifty seconds). It returns every endpoint it holds.
func (d *Dispatcher) claim(ctx context.Context) ([]string, error) {
	rows, err := d.db.Query(ctx, `
WITH renewed AS (
	UPDATE webhook_endpoints SET lease_until = now() + $2::interval
	WHERE lease_owner = $1 AND enabled AND deleted_at IS NULL
	RETURNING id
), free AS (
	SELECT id FROM webhook_endpoints
	WHERE enabled AND deleted_at IS NULL AND (lease_owner IS NULL OR lease_until < now()) AND lease_owner IS DISTINCT FROM $1
	ORDER BY lease_until NULLS FIRST, id
	LIMIT (SELECT greatest(1, (count(*) + 1) / 2) FROM webhook_endpoints
		WHERE enabled AND deleted_at IS NULL AND (lease_owner IS NULL OR lease_until < now()) AND lease_owner IS DISTINCT FROM $1)
	FOR UPDATE SKIP LOCKED
), taken AS (
	UPDATE webhook_endpoints e SET lease_owner = $1, lease_until = now() + $2::interval
	FROM free WHERE e.id = free.id
	RETURNING e.id
)
SELECT id::text FROM renewed UNION SELECT id::text FROM taken`, d.cfg.Owner, d.cfg.Lease.String())
	if err != nil {
		return nil, fmt.Errorf("take webhook endpoints: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// release gives up every endpoint this dispatcher holds.
func (d *Dispatcher) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.db.Exec(ctx, `UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1`, d.cfg.Owner); err != nil {
		d.cfg.Logger.Warn("webhook dispatcher: release endpoints", "error", err)
	}
}

// errLeaseLost ends a live delivery whose endpoint another dispatcher holds now, or that was
// disabled or deleted.
var errLeaseLost = errors.New("the endpoint is no longer this dispatcher's")

// live runs endpoint id's live delivery while this dispatcher holds it and it is enabled.
func (d *Dispatcher) live(ctx context.Context, id string) {
	d.cfg.Logger.Info("webhook delivery started", "endpoint", id)
	defer d.cfg.Logger.Info("webhook delivery stopped", "endpoint", id)
	backoff := d.cfg.Poll
	var (
		failedInARow int
		checkpoints  checkpointRetry
	)
	for ctx.Err() == nil {
		more, err := d.liveBatch(ctx, id, &failedInARow, &checkpoints)
		switch {
		case errors.Is(err, errLeaseLost):
			return
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			d.cfg.Logger.Warn("webhook delivery", "endpoint", id, "error", err)
			backoff = min(backoff*2, 5*time.Second)
			sleep(ctx, backoff)
			continue
		}
		backoff = d.cfg.Poll
		switch {
		case failedInARow >= d.cfg.TripAfter:
			sleep(ctx, d.cfg.Probe)
		case !more:
			sleep(ctx, d.cfg.Poll)
		}
	}
}

// liveBatch delivers the next events after the endpoint's offset and moves the offset past
// them, recording every post. It reports whether there may be more to read at once.
//
// failedInARow counts the live posts that failed since the last success. Once it reaches
// TripAfter the endpoint fails everything it is sent, and posting each new event to it would
// cost as much as delivering it and achieve nothing: the live delivery then posts one event, a
// probe, every Probe, and leaves the rest in the log, where they wait without costing anything.
// A probe that succeeds ends it, and the events that waited are delivered in log order. A probe
// that fails is retried on the schedule, like any failed delivery; the endpoint's failure time
// goes on, so a dead endpoint is still disabled after HERALD_WEBHOOK_DISABLE_AFTER.
//
// An endpoint subscribed to checkpoint.signed is first posted the checkpoints past its own offset
// in them (liveCheckpoints); cps is where their retries stand.
func (d *Dispatcher) liveBatch(ctx context.Context, id string, failedInARow *int, cps *checkpointRetry) (bool, error) {
	t, err := d.sender.loadTarget(ctx, id)
	if err != nil {
		if herald.ErrorCode(err) == herald.ENOTFOUND {
			return false, errLeaseLost
		}
		return false, err
	}
	if !t.Enabled || t.owner != d.cfg.Owner {
		return false, errLeaseLost
	}
	if t.TakesCheckpoints() {
		if err := d.liveCheckpoints(ctx, t, cps); err != nil {
			return false, err
		}
	}
	recs, cursors, err := d.log.ReadAfterEach(ctx, nil, t.cursor, d.cfg.Batch)
	if err != nil {
		return false, err
	}
	if len(recs) == 0 {
		// Nothing visible yet is not nothing behind: an open transaction may hold events back.
		if head, err := d.log.Head(ctx); err == nil {
			d.sender.metrics.lag(id, max(head-t.cursor.Position, 0), 0)
		}
		return false, nil
	}
	// Looked at again now that the batch is read: an event appended after the endpoint was
	// disabled, or taken by another dispatcher, was read after that change was committed, and
	// this look sees the change too, so such an event is never posted here.
	if live, err := d.stillLive(ctx, t); err != nil {
		return false, err
	} else if !live {
		return false, errLeaseLost
	}
	full := len(recs) == d.cfg.Batch
	probing := *failedInARow >= d.cfg.TripAfter
	var (
		sel      []events.Recorded
		attempts []int
	)
	for i, r := range recs {
		if !t.Takes(r.Type) {
			continue
		}
		sel = append(sel, r)
		attempts = append(attempts, 1)
		if probing {
			// One event, and the offset goes no further than it.
			recs, cursors, full = recs[:i+1], cursors[:i+1], true
			break
		}
	}
	next := cursors[len(cursors)-1]
	outs := d.sender.postAll(ctx, t, sel, attempts, TriggerLive, d.cfg.Lanes)
	h, err := d.commit(ctx, t, next, outs)
	if err != nil {
		return false, err
	}
	if anySucceeded(outs) {
		*failedInARow = 0
	} else {
		for _, o := range outs {
			if o.posted {
				*failedInARow++
			}
		}
	}
	d.sender.disableIfFailing(ctx, id, h)
	var lagSeconds float64
	if full {
		lagSeconds = time.Since(recs[len(recs)-1].Time).Seconds()
	}
	if head, err := d.log.Head(ctx); err == nil {
		d.sender.metrics.lag(id, max(head-next.Position, 0), lagSeconds)
	}
	return full, nil
}

// stillLive reports whether endpoint t is still enabled, not deleted, and this dispatcher's at
// the offset t was read at.
func (d *Dispatcher) stillLive(ctx context.Context, t target) (bool, error) {
	var live bool
	err := d.db.QueryRow(ctx, `SELECT enabled AND lease_owner IS NOT DISTINCT FROM $2
			AND cursor_transaction_id = $3::text::xid8 AND cursor_position = $4
		FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`,
		t.ID, d.cfg.Owner, fmt.Sprint(t.cursor.TransactionID), t.cursor.Position).Scan(&live)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look at endpoint %s again: %w", t.ID, err)
	}
	return live, nil
}

// anySucceeded reports whether any of outs succeeded.
func anySucceeded(outs []outcome) bool {
	for _, o := range outs {
		if o.succeeded() {
			return true
		}
	}
	return false
}

// commit moves the endpoint's offset from t.cursor to next and records outs, in one transaction,
// provided the endpoint is still this dispatcher's at t.cursor: otherwise it records the
// attempts made (they happened) but leaves the retries, and the offset, to the new holder.
func (d *Dispatcher) commit(ctx context.Context, t target, next events.Cursor, outs []outcome) (health, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var (
		h    health
		lost bool
	)
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET cursor_transaction_id = $3::text::xid8, cursor_position = $4
			WHERE id = $1 AND lease_owner = $2 AND cursor_transaction_id = $5::text::xid8 AND cursor_position = $6`,
			t.ID, d.cfg.Owner, fmt.Sprint(next.TransactionID), next.Position, fmt.Sprint(t.cursor.TransactionID), t.cursor.Position)
		if err != nil {
			return fmt.Errorf("move the offset of endpoint %s: %w", t.ID, err)
		}
		lost = tag.RowsAffected() != 1
		h, err = d.sender.recordAttempts(ctx, tx, t.ID, outs, !lost)
		return err
	})
	if err == nil && lost {
		return h, errLeaseLost
	}
	return h, err
}

// retryLoop takes due retries of any endpoint and sends them, until ctx is done; then it waits
// for the retries under way to be sent and recorded.
func (d *Dispatcher) retryLoop(ctx context.Context) {
	pendingEvery := time.NewTicker(5 * time.Second)
	defer pendingEvery.Stop()
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	for ctx.Err() == nil {
		n, err := d.retryBatch(ctx, &inFlight)
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhook retries", "error", err)
		}
		select {
		case <-pendingEvery.C:
			d.countPending(ctx)
			d.disableFailing(ctx)
		default:
		}
		if n < d.cfg.RetryBatch {
			// Spread the dispatchers' looks over the interval.
			sleep(ctx, d.cfg.Poll*2+time.Duration(rand.Int64N(int64(d.cfg.Poll))))
		}
	}
}

// perEndpoint is the most retries of one endpoint taken at a time: two rounds of its lanes, so
// that a lease of two request timeouts covers them.
func (d *Dispatcher) perEndpoint() int { return 2 * d.cfg.Lanes }

// retryLease is how long taken retries stay this dispatcher's: long enough to post them all
// (two rounds of requests, each up to the request timeout) and record them, after which
// another dispatcher may take them again.
func (d *Dispatcher) retryLease() time.Duration { return 2*d.cfg.RequestTimeout + d.cfg.Lease }

// due is a retry taken by a dispatcher.
type due struct {
	endpoint string
	position int64
	attempt  int
	origin   string
}

// retryBatch takes up to RetryBatch due retries under a lease, of endpoints that have none
// under way in this dispatcher, and sends each endpoint's in a goroutine of its own, which
// records what came of them: a slow endpoint's retries hold back no other endpoint's. It
// returns how many it took.
func (d *Dispatcher) retryBatch(ctx context.Context, inFlight *sync.WaitGroup) (int, error) {
	d.mu.Lock()
	busy := make([]string, 0, len(d.retrying))
	for id := range d.retrying {
		busy = append(busy, id)
	}
	d.mu.Unlock()
	taken, err := d.takeDue(ctx, busy, nil)
	if err != nil || len(taken) == 0 {
		return 0, err
	}
	byEndpoint := map[string][]due{}
	for _, x := range taken {
		byEndpoint[x.endpoint] = append(byEndpoint[x.endpoint], x)
	}
	for id, xs := range byEndpoint {
		d.mu.Lock()
		d.retrying[id] = true
		d.mu.Unlock()
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			defer func() {
				d.mu.Lock()
				delete(d.retrying, id)
				d.mu.Unlock()
			}()
			d.retryEndpointWhileDue(ctx, id, xs)
		}()
	}
	return len(taken), nil
}

// retryEndpointWhileDue sends the retries xs of one endpoint, then takes and sends its next due
// ones at once, as long as it finds a full batch: an endpoint's backlog drains as fast as it
// answers, not one batch per look of the dispatcher.
func (d *Dispatcher) retryEndpointWhileDue(ctx context.Context, id string, xs []due) {
	for {
		if err := d.retryEndpoint(ctx, id, xs); err != nil {
			if ctx.Err() == nil {
				d.cfg.Logger.Warn("webhook retries", "endpoint", id, "error", err)
			}
			return
		}
		if len(xs) < d.perEndpoint() || ctx.Err() != nil {
			return
		}
		next, err := d.takeDue(ctx, nil, &id)
		if err != nil || len(next) == 0 {
			return
		}
		xs = next
	}
}

// takeDuePlan makes takeDueSQL read each endpoint's retries through its index, in order.
const takeDuePlan = `SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off`

// takeDueSQL leases due retries: $1 the most, $2 the lease, $3 the most per endpoint, $4 the
// endpoints left out, $5 the one endpoint taken from (NULL: any).
const takeDueSQL = `
WITH picked AS (
	SELECT due.endpoint_id, due.event_position
	FROM webhook_endpoints e
	CROSS JOIN LATERAL (
		SELECT r.endpoint_id, r.event_position FROM webhook_retries r
		WHERE r.endpoint_id = e.id AND r.due_at <= now() AND (r.lease_until IS NULL OR r.lease_until < now())
		ORDER BY r.due_at LIMIT $3 FOR UPDATE OF r SKIP LOCKED
	) due
	WHERE e.enabled AND e.deleted_at IS NULL AND e.id <> ALL($4::uuid[]) AND ($5::uuid IS NULL OR e.id = $5)
	LIMIT $1
)
UPDATE webhook_retries r SET lease_until = now() + $2::interval
FROM picked WHERE r.endpoint_id = picked.endpoint_id AND r.event_position = picked.event_position
RETURNING r.endpoint_id::text, r.event_position, r.attempt, r.trigger`

// takeDue leases up to RetryBatch due retries of enabled endpoints, in one short transaction.
// Each endpoint's are read in due order through (endpoint_id, due_at), planned so whatever the
// table's statistics say: the cost is the retries taken, not the backlog. Left to itself the
// planner, while webhook_endpoints had no statistics, read and sorted every pending retry for
// each batch (400–770 ms with 70,000 pending, against 7 ms), so a backlog slowed its own draining.
func (d *Dispatcher) takeDue(ctx context.Context, busy []string, only *string) ([]due, error) {
	if busy == nil {
		busy = []string{}
	}
	var taken []due
	err := pgx.BeginFunc(ctx, d.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, takeDuePlan); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, takeDueSQL, d.cfg.RetryBatch, d.retryLease().String(), d.perEndpoint(), busy, only)
		if err != nil {
			return err
		}
		taken, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (due, error) {
			var x due
			return x, row.Scan(&x.endpoint, &x.position, &x.attempt, &x.origin)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take due webhook retries: %w", err)
	}
	return taken, nil
}

// retryEndpoint sends the retries xs of one endpoint. An event the endpoint no longer takes is
// dropped from the retries.
func (d *Dispatcher) retryEndpoint(ctx context.Context, id string, xs []due) error {
	t, err := d.sender.loadTarget(ctx, id)
	if err != nil {
		return err
	}
	if !t.Enabled {
		// Disabled since they were taken: they wait, released, for an enable.
		_, err := d.db.Exec(ctx, `UPDATE webhook_retries SET lease_until = NULL WHERE endpoint_id = $1 AND event_position = ANY($2)`,
			id, positionsOf(xs))
		return err
	}
	positions := make([]int64, len(xs))
	for i, x := range xs {
		positions[i] = x.position
	}
	recs, err := d.log.AtPositions(ctx, positions)
	if err != nil {
		return err
	}
	var (
		sel      []events.Recorded
		attempts []int
		dropped  []int64
	)
	for i, x := range xs {
		r, ok := recs[x.position]
		if !ok || !t.Takes(r.Type) {
			dropped = append(dropped, x.position)
			continue
		}
		sel = append(sel, r)
		attempts = append(attempts, xs[i].attempt)
	}
	if len(dropped) > 0 {
		if _, err := d.db.Exec(ctx, `DELETE FROM webhook_retries WHERE endpoint_id = $1 AND event_position = ANY($2)`, id, dropped); err != nil {
			return fmt.Errorf("drop retries of endpoint %s: %w", id, err)
		}
	}
	// A retry after a replay's first attempt is a retry all the same.
	outs := d.sender.postAll(ctx, t, sel, attempts, TriggerRetry, d.cfg.Lanes)
	h, err := d.sender.recordIn(ctx, id, outs)
	if err != nil {
		return err
	}
	d.sender.disableIfFailing(ctx, id, h)
	return nil
}

// disableFailing disables the endpoints that have failed for too long, whether or not anything is
// being sent to them now: an endpoint whose last retry has been given up is not left enabled.
func (d *Dispatcher) disableFailing(ctx context.Context) {
	cutoff := d.sender.now().Add(-d.sender.disableAfter)
	rows, err := d.db.Query(ctx, `SELECT id::text, failing_since FROM webhook_endpoints
		WHERE enabled AND deleted_at IS NULL AND failing_since < $1`, cutoff)
	if err != nil {
		return
	}
	type failing struct {
		id    string
		since time.Time
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (failing, error) {
		var f failing
		return f, row.Scan(&f.id, &f.since)
	})
	if err != nil {
		return
	}
	for _, f := range list {
		d.sender.disableIfFailing(ctx, f.id, health{enabled: true, failingSince: &f.since})
	}
}

// positionsOf lists the event positions of xs.
func positionsOf(xs []due) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = x.position
	}
	return out
}

// countPending sets the retries-pending gauge.
func (d *Dispatcher) countPending(ctx context.Context) {
	if d.sender.metrics == nil {
		return
	}
	rows, err := d.db.Query(ctx, `SELECT r.endpoint_id::text, count(*) FROM webhook_retries r
		JOIN webhook_endpoints e ON e.id = r.endpoint_id AND e.deleted_at IS NULL GROUP BY r.endpoint_id`)
	if err != nil {
		return
	}
	counts := map[string]int64{}
	for rows.Next() {
		var (
			id string
			n  int64
		)
		if rows.Scan(&id, &n) == nil {
			counts[id] = n
		}
	}
	if rows.Err() == nil {
		d.sender.metrics.setPending(counts)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
