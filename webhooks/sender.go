package webhooks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// DefaultSchedule is the wait before each retry of a failed delivery, after the first attempt:
// Svix's, so that receivers built for it see the same rhythm. After the last, the delivery is
// given up (every attempt stays listed).
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// SystemActor names Herald itself in the endpoint events it appends (disabling a failing one).
const SystemActor = "system:webhooks"

// Sender posts events of the log to an endpoint and records what came of each post: the
// attempt, the retry it calls for, the endpoint's health. The dispatcher's live delivery and
// retries, and replays, all send through it.
type Sender struct {
	db        DB
	endpoints *Endpoints
	client    *Client
	schedule  []time.Duration
	// disableAfter is how long an endpoint may fail without a success before it is disabled.
	disableAfter time.Duration
	metrics      *Metrics
	logger       *slog.Logger
	now          func() time.Time
}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Client *Client
	// Schedule is the wait before each retry; DefaultSchedule when nil.
	Schedule []time.Duration
	// DisableAfter is how long an endpoint may fail without a success before it is disabled
	// (HERALD_WEBHOOK_DISABLE_AFTER); 5 days when 0.
	DisableAfter time.Duration
	Metrics      *Metrics
	Logger       *slog.Logger
}

// NewSender returns a Sender for the endpoints in db.
func NewSender(db DB, endpoints *Endpoints, c SenderConfig) *Sender {
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{db: db, endpoints: endpoints, client: c.Client, schedule: c.Schedule, disableAfter: c.DisableAfter,
		metrics: c.Metrics, logger: c.Logger, now: time.Now}
}

// target is an endpoint as a sender needs it: where, which events, and the secrets that sign.
type target struct {
	Endpoint
	secrets []Secret
	// cursor and owner are the live delivery's: its offset and the dispatcher holding it.
	cursor events.Cursor
	owner  string
}

// loadTarget reads endpoint id with its secrets. ENOTFOUND for a deleted or unknown endpoint.
func (s *Sender) loadTarget(ctx context.Context, id string) (target, error) {
	var (
		t        target
		secret   string
		previous *string
		xid      string
		owner    *string
	)
	err := s.db.QueryRow(ctx, `SELECT `+endpointColumns+`, secret, previous_secret, cursor_transaction_id::text, lease_owner
		FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`, id).Scan(
		&t.ID, &t.URL, &t.Description, &t.EventTypes, &t.Enabled, &t.DisabledReason, &t.Version, &t.CreatedAt, &t.CreatedBy,
		&t.UpdatedAt, &t.PreviousSecretUntil, &t.Position, &t.FailingSince, &t.LastSuccessAt, &t.CheckpointSeq, &secret, &previous, &xid, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return target{}, notFound(id)
	}
	if err != nil {
		return target{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	if len(t.EventTypes) == 0 {
		t.EventTypes = nil
	}
	cur, err := ParseSecret(secret)
	if err != nil {
		return target{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	t.secrets = []Secret{cur}
	if previous != nil && t.PreviousSecretUntil != nil && t.PreviousSecretUntil.After(s.now()) {
		if old, err := ParseSecret(*previous); err == nil {
			t.secrets = append(t.secrets, old)
		}
	} else {
		t.PreviousSecretUntil = nil
	}
	t.cursor.Position = t.Position
	if _, err := fmt.Sscan(xid, &t.cursor.TransactionID); err != nil {
		return target{}, fmt.Errorf("endpoint %s: cursor %q: %w", id, xid, err)
	}
	if owner != nil {
		t.owner = *owner
	}
	return t, nil
}

// outcome is what came of posting one event, or of not posting it.
type outcome struct {
	rec     events.Recorded
	attempt int
	trigger string
	// posted is false for an event not posted because the sender was stopping: it is tried
	// again, as the same attempt.
	posted bool
	at     time.Time
	answer Answer
	err    error
}

func (o outcome) succeeded() bool { return o.posted && o.err == nil && o.answer.Status/100 == 2 }

// errorText says why o failed, "" when it did not.
func (o outcome) errorText() string {
	switch {
	case o.err != nil:
		return o.err.Error()
	case o.answer.Status/100 != 2:
		return fmt.Sprintf("the endpoint answered %d %s", o.answer.Status, http.StatusText(o.answer.Status))
	}
	return ""
}

// payload returns the body announcing rec.
func payload(rec events.Recorded) ([]byte, error) {
	e, err := rec.Event()
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire.NewWebhookPayload(rec, events.StatusAfter(e)))
}

// post sends rec to t as its attempt, signed with t's secrets.
func (s *Sender) post(ctx context.Context, t target, rec events.Recorded, attempt int, trigger string) outcome {
	o := outcome{rec: rec, attempt: attempt, trigger: trigger, posted: true, at: s.now()}
	body, err := payload(rec)
	if err != nil {
		o.err = fmt.Errorf("payload of event %d: %w", rec.Position, err)
		return o
	}
	h := Headers(rec.ID, o.at, body, t.secrets...)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Herald-Webhooks/1")
	o.answer, o.err = s.client.Post(ctx, t.URL, h, body)
	if o.answer.Duration == 0 {
		o.answer.Duration = s.now().Sub(o.at)
	}
	return o
}

// postCheckpoint sends the signed checkpoint cp to t, signed with t's secrets like an event's
// payload, and returns the endpoint's answer; an answer that is not 2xx is an error.
func (s *Sender) postCheckpoint(ctx context.Context, t target, cp ledger.Checkpoint, trigger string) (Answer, error) {
	p := wire.NewWebhookCheckpointPayload(cp)
	body, err := json.Marshal(p)
	if err != nil {
		return Answer{}, fmt.Errorf("payload of checkpoint %d: %w", cp.Seq, err)
	}
	at := s.now()
	h := Headers(p.MessageID(), at, body, t.secrets...)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Herald-Webhooks/1")
	answer, err := s.client.Post(ctx, t.URL, h, body)
	if answer.Duration == 0 {
		answer.Duration = s.now().Sub(at)
	}
	if err == nil && answer.Status/100 != 2 {
		err = fmt.Errorf("the endpoint answered %d %s", answer.Status, http.StatusText(answer.Status))
	}
	s.metrics.observeCheckpoint(t.ID, trigger, answer.Duration, err == nil)
	return answer, err
}

// postAll sends recs to t with up to lanes requests at a time. The events of one notification
// go through one lane, in log order, so that a receiver sees each notification's events in the
// order they happened unless one fails and is retried later. Once ctx is done no more are
// started (those are returned not posted); a request under way is not cut short, so that its
// answer is known and recorded — the client's timeout bounds it.
func (s *Sender) postAll(ctx context.Context, t target, recs []events.Recorded, attempts []int, trigger string, lanes int) []outcome {
	out := make([]outcome, len(recs))
	if lanes < 1 {
		lanes = 1
	}
	byLane := make([][]int, lanes)
	for i, r := range recs {
		h := fnv.New32a()
		h.Write([]byte(r.StreamID))
		l := int(h.Sum32() % uint32(lanes))
		byLane[l] = append(byLane[l], i)
	}
	var wg sync.WaitGroup
	for _, idx := range byLane {
		if len(idx) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range idx {
				if ctx.Err() != nil {
					out[i] = outcome{rec: recs[i], attempt: attempts[i], trigger: trigger}
					continue
				}
				out[i] = s.post(context.WithoutCancel(ctx), t, recs[i], attempts[i], trigger)
			}
		}()
	}
	wg.Wait()
	return out
}

// record stores what came of outs, in tx: an attempt row for each event posted; for a failure a
// retry on the schedule, or none once the schedule is spent; for an event not posted a retry due
// at once; for a success, no retry left. It updates the endpoint's health and returns it.
func (s *Sender) record(ctx context.Context, tx pgx.Tx, endpointID string, outs []outcome) (health, error) {
	return s.recordAttempts(ctx, tx, endpointID, outs, true)
}

// recordAttempts is record, with the retries left alone unless retries is set.
func (s *Sender) recordAttempts(ctx context.Context, tx pgx.Tx, endpointID string, outs []outcome, retries bool) (health, error) {
	// Every record locks in one order — the endpoint's row, then its retries by position — so
	// that the live delivery, the retries and a replay recording at once wait for each other
	// instead of deadlocking (and losing the record of posts that were made).
	outs = slices.Clone(outs)
	slices.SortFunc(outs, func(a, b outcome) int { return cmp.Compare(a.rec.Position, b.rec.Position) })
	h := healthOf(outs)
	var got health
	b := &pgx.Batch{}
	// failing_since is the first failure after the last success, whatever order the records of
	// the live delivery, the retries and replays arrive in: a failure older than the last
	// success counts for nothing, and a success clears only failures older than itself.
	b.Queue(`UPDATE webhook_endpoints SET
			last_success_at = greatest(last_success_at, $2),
			failing_since = (SELECT min(f) FROM (VALUES
				(CASE WHEN failing_since > coalesce(greatest(last_success_at, $2), '-infinity') THEN failing_since END),
				(CASE WHEN $3::timestamptz > coalesce(greatest(last_success_at, $2), '-infinity') THEN $3::timestamptz END)) AS v(f))
		WHERE id = $1 RETURNING enabled AND deleted_at IS NULL, failing_since`,
		endpointID, h.lastSuccess, h.failingSince).QueryRow(func(row pgx.Row) error {
		return row.Scan(&got.enabled, &got.failingSince)
	})
	queueAttempts(b, endpointID, outs)
	if retries {
		s.queueRetryChanges(b, endpointID, outs)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return health{}, fmt.Errorf("record %d deliveries to endpoint %s: %w", len(outs), endpointID, err)
	}
	s.metrics.observe(endpointID, outs)
	return got, nil
}

// queueAttempts queues one statement that inserts an attempt row for each post among outs: one
// statement for a batch of hundreds, rather than one each, is most of what recording costs.
func queueAttempts(b *pgx.Batch, endpointID string, outs []outcome) {
	var (
		eventIDs, types, streams, triggers, errs, responses []string
		positions                                           []int64
		attempts                                            []int32
		ats                                                 []time.Time
		durations                                           []float64
		statuses                                            []*int32
		succeeded                                           []bool
	)
	for _, o := range outs {
		if !o.posted {
			continue
		}
		var status *int32
		if o.answer.Status != 0 {
			st := int32(o.answer.Status)
			status = &st
		}
		eventIDs, positions, types, streams = append(eventIDs, o.rec.ID), append(positions, o.rec.Position), append(types, o.rec.Type), append(streams, o.rec.StreamID)
		attempts, triggers, ats, durations = append(attempts, int32(o.attempt)), append(triggers, o.trigger), append(ats, o.at), append(durations, o.answer.Duration.Seconds())
		statuses, succeeded = append(statuses, status), append(succeeded, o.succeeded())
		errs, responses = append(errs, clean(o.errorText(), 1000)), append(responses, clean(string(o.answer.Body), 1024))
	}
	if len(eventIDs) == 0 {
		return
	}
	b.Queue(`INSERT INTO webhook_attempts (endpoint_id, event_id, event_position, event_type, notification_id,
		attempt, trigger, attempted_at, duration_seconds, status_code, succeeded, error, response)
		SELECT $1, a.* FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::uuid[], $6::int[], $7::text[],
			$8::timestamptz[], $9::float8[], $10::int[], $11::bool[], $12::text[], $13::text[]) AS a`,
		endpointID, eventIDs, positions, types, streams, attempts, triggers, ats, durations, statuses, succeeded, errs, responses)
}

// queueRetryChanges queues what outs do to their events' retries, in at most three statements.
// A retry owns its row, which it advances, releases or deletes only while the row is still at its
// attempt. The live delivery and replays only add a retry where none is pending: one already
// pending keeps its schedule and whoever holds it. (Every record updates the endpoint's row
// first, so two records of one endpoint never hold each other's retry rows.)
func (s *Sender) queueRetryChanges(b *pgx.Batch, endpointID string, outs []outcome) {
	var (
		addPos, advPos, dropPos          []int64
		addAttempt, advFrom, advTo, drop []int32
		addTrigger                       []string
		addDue, advDue                   []time.Time
	)
	add := func(o outcome, attempt int, due time.Time) {
		addPos, addAttempt, addTrigger, addDue = append(addPos, o.rec.Position), append(addAttempt, int32(attempt)), append(addTrigger, o.trigger), append(addDue, due)
	}
	advance := func(o outcome, to int, due time.Time) {
		advPos, advFrom, advTo, advDue = append(advPos, o.rec.Position), append(advFrom, int32(o.attempt)), append(advTo, int32(to)), append(advDue, due)
	}
	for _, o := range outs {
		exhausted := o.attempt > len(s.schedule)
		if o.trigger == TriggerRetry {
			switch {
			case o.succeeded() || (o.posted && exhausted):
				dropPos, drop = append(dropPos, o.rec.Position), append(drop, int32(o.attempt))
			case !o.posted:
				advance(o, o.attempt, s.now())
			default:
				advance(o, o.attempt+1, o.at.Add(s.schedule[o.attempt-1]))
			}
			continue
		}
		switch {
		case o.succeeded():
		case !o.posted:
			add(o, o.attempt, s.now())
		case !exhausted:
			add(o, o.attempt+1, o.at.Add(s.schedule[o.attempt-1]))
		}
	}
	if len(addPos) > 0 {
		b.Queue(`INSERT INTO webhook_retries (endpoint_id, event_position, attempt, trigger, due_at)
			SELECT $1, a.* FROM unnest($2::bigint[], $3::int[], $4::text[], $5::timestamptz[]) AS a
			ON CONFLICT (endpoint_id, event_position) DO NOTHING`, endpointID, addPos, addAttempt, addTrigger, addDue)
	}
	if len(advPos) > 0 {
		b.Queue(`UPDATE webhook_retries r SET attempt = a.next, due_at = a.due, lease_until = NULL
			FROM unnest($2::bigint[], $3::int[], $4::int[], $5::timestamptz[]) AS a(position, attempt, next, due)
			WHERE r.endpoint_id = $1 AND r.event_position = a.position AND r.attempt = a.attempt`,
			endpointID, advPos, advFrom, advTo, advDue)
	}
	if len(dropPos) > 0 {
		b.Queue(`DELETE FROM webhook_retries r USING unnest($2::bigint[], $3::int[]) AS a(position, attempt)
			WHERE r.endpoint_id = $1 AND r.event_position = a.position AND r.attempt = a.attempt`, endpointID, dropPos, drop)
	}
}

// clean makes s storable as text: valid UTF-8, no NUL, at most max bytes.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// health is an endpoint's record of success: when it last succeeded, and the first failure
// since (nil while it succeeds).
type health struct {
	enabled      bool
	lastSuccess  *time.Time
	failingSince *time.Time
}

// healthOf reads outs in time order: their last success, and the first failure after it.
func healthOf(outs []outcome) health {
	var h health
	for _, o := range outs {
		if !o.posted {
			continue
		}
		at := o.at
		if o.succeeded() {
			if h.lastSuccess == nil || at.After(*h.lastSuccess) {
				h.lastSuccess = &at
			}
		}
	}
	for _, o := range outs {
		if !o.posted || o.succeeded() {
			continue
		}
		at := o.at
		if h.lastSuccess != nil && !at.After(*h.lastSuccess) {
			continue
		}
		if h.failingSince == nil || at.Before(*h.failingSince) {
			h.failingSince = &at
		}
	}
	return h
}

// disableIfFailing disables the endpoint when h says it has failed without a success for longer
// than the sender allows, recording WebhookEndpointDisabled by SystemActor.
func (s *Sender) disableIfFailing(ctx context.Context, endpointID string, h health) {
	if !h.enabled || h.failingSince == nil || s.now().Sub(*h.failingSince) < s.disableAfter {
		return
	}
	cur, err := s.endpoints.Get(ctx, endpointID)
	if err != nil || !cur.Enabled {
		return
	}
	since := h.failingSince.UTC()
	reason := fmt.Sprintf("no successful delivery since %s (more than %s)", since.Format(time.RFC3339), s.disableAfter)
	ev := &events.WebhookEndpointDisabled{Cause: events.DisabledFailing, Reason: reason, FailingSince: &since}
	// Only if it is still failing since then: a success recorded meanwhile clears it.
	err = s.endpoints.changeIf(ctx, cur, SystemActor, ev, `failing_since = $4`, `enabled = false, disabled_reason = $3`, "disabled: "+reason, since)
	if herald.ErrorCode(err) == herald.ECONFLICT {
		return // it succeeded, or changed, meanwhile
	}
	if err != nil {
		s.logger.Warn("disable a failing webhook endpoint", "endpoint", endpointID, "error", err)
		return
	}
	s.logger.Warn("webhook endpoint disabled: it kept failing", "endpoint", endpointID, "failing_since", since)
}

// recordIn records outs in a transaction of its own, detached from ctx's cancellation: what was
// posted is recorded even while the sender stops.
func (s *Sender) recordIn(ctx context.Context, endpointID string, outs []outcome) (health, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var h health
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		h, err = s.record(ctx, tx, endpointID, outs)
		return err
	})
	return h, err
}

// recordTimeout bounds the transaction that records a batch of posts.
const recordTimeout = 30 * time.Second
