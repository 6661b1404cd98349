package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// RotationOverlap is how long, after a secret rotation, requests carry a signature by the old
// secret beside the new one: the time a receiver has to deploy the new secret.
const RotationOverlap = 24 * time.Hour

// MaxDescription caps an endpoint's description.
const MaxDescription = 500

// DB is what the endpoint store and the dispatcher need of PostgreSQL: a *pgxpool.Pool.
type DB interface {
	events.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Endpoint is a webhook endpoint as the store keeps it, without its secrets.
type Endpoint struct {
	ID          string
	URL         string
	Description string
	// EventTypes are the notification event types posted to it; none means all of them.
	EventTypes []string
	Enabled    bool
	// DisabledReason says why a disabled endpoint is, in words.
	DisabledReason string
	// Version is the version of the endpoint's stream in the log.
	Version   int64
	CreatedAt time.Time
	CreatedBy string
	UpdatedAt time.Time
	// PreviousSecretUntil is set while a rotated-out secret still signs.
	PreviousSecretUntil *time.Time
	// Position is the log position of the last event the live delivery has gone past.
	Position int64
	// FailingSince is the first failure after the last success; nil while it succeeds.
	FailingSince  *time.Time
	LastSuccessAt *time.Time
	// CheckpointSeq is the seq of the last signed checkpoint posted to it (checkpoint.signed),
	// or, before the first, of the latest one when it subscribed.
	CheckpointSeq int64
}

// Takes reports whether events of type typ are posted to e. An endpoint that names only
// checkpoint.signed takes no notification event.
func (e Endpoint) Takes(typ string) bool {
	if !events.IsNotificationType(typ) {
		return false
	}
	if len(e.EventTypes) == 0 {
		return true
	}
	return slices.Contains(e.EventTypes, typ)
}

// TakesCheckpoints reports whether the log's signed checkpoints are posted to e: only when it
// names checkpoint.signed, never through "all", which is every notification event type (a
// receiver built for those would not expect another shape).
func (e Endpoint) TakesCheckpoints() bool {
	return slices.Contains(e.EventTypes, wire.WebhookCheckpointSigned)
}

// Endpoints keeps the webhook endpoints (table webhook_endpoints) and records every change of
// one as an event of its stream in the log, in the same transaction.
type Endpoints struct {
	db     DB
	log    *events.Log
	policy Policy
}

// NewEndpoints returns the endpoint store in db, which checks URLs against policy.
func NewEndpoints(db DB, policy Policy) *Endpoints {
	return &Endpoints{db: db, log: events.NewLog(db), policy: policy}
}

// NewEndpoint is what registering an endpoint takes.
type NewEndpoint struct {
	URL         string
	Description string
	// EventTypes are the notification event types to post; none means all of them.
	EventTypes []string
}

// ParseEventTypes reads an endpoint's event types: "all" (or nothing) for every notification
// event type, else a comma-separated list of them and checkpoint.signed. EINVALID, under field,
// for an unknown type.
func ParseEventTypes(s, field string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return nil, nil
	}
	return checkEventTypes(strings.Split(s, ","), field)
}

// checkEventTypes returns types trimmed, without repeats, in catalogue order (checkpoint.signed
// last); EINVALID naming field for a type that is neither a notification event type nor
// checkpoint.signed.
func checkEventTypes(types []string, field string) ([]string, error) {
	var bad []string
	seen := map[string]bool{}
	for _, t := range types {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
		case !events.IsNotificationType(t) && t != wire.WebhookCheckpointSigned:
			bad = append(bad, fmt.Sprintf("%q", t))
		default:
			seen[t] = true
		}
	}
	if len(bad) > 0 {
		return nil, herald.Invalid("the endpoint is invalid", map[string]string{
			field: "unknown event type " + strings.Join(bad, ", ") + "; want all, or some of " + strings.Join(events.NotificationTypes, ", ") +
				", " + wire.WebhookCheckpointSigned,
		})
	}
	var out []string
	for _, t := range append(slices.Clip(events.NotificationTypes), wire.WebhookCheckpointSigned) {
		if seen[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// check validates n and returns it cleaned.
func (s *Endpoints) check(n NewEndpoint) (NewEndpoint, error) {
	fields := map[string]string{}
	if _, err := ValidateURL(n.URL, s.policy); err != nil {
		fields["url"] = herald.ErrorMessage(err)
	}
	if len(n.Description) > MaxDescription {
		fields["description"] = fmt.Sprintf("is %d bytes, at most %d", len(n.Description), MaxDescription)
	}
	types, err := checkEventTypes(n.EventTypes, "events")
	if err != nil {
		for k, v := range herald.ErrorFields(err) {
			fields[k] = v
		}
	}
	if len(fields) > 0 {
		return n, herald.Invalid("the endpoint is invalid", fields)
	}
	n.EventTypes = types
	return n, nil
}

// Create registers an endpoint and returns it with its signing secret, which is shown this once.
// Its live delivery starts at the end of the log: the events committed from now on. EINVALID
// for a bad URL, description or event type; ECONFLICT when an endpoint already has the URL.
func (s *Endpoints) Create(ctx context.Context, n NewEndpoint, actor string) (Endpoint, Secret, error) {
	n, err := s.check(n)
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Endpoint{}, Secret{}, fmt.Errorf("new endpoint id: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// Read before the first write: a transaction that has written sees its own as open.
		head, err := s.log.VisibleHead(ctx, tx)
		if err != nil {
			return err
		}
		created := &events.WebhookEndpointCreated{URL: n.URL, Description: n.Description, EventTypes: n.EventTypes}
		if _, err := s.log.In(tx).Append(ctx, id.String(), 0, events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}, created); err != nil {
			return err
		}
		// Its checkpoints start after the latest too.
		_, err = tx.Exec(ctx, `INSERT INTO webhook_endpoints (id, version, url, description, event_types, secret,
			created_by, cursor_transaction_id, cursor_position, checkpoint_seq)
			VALUES ($1, 1, $2, $3, $4, $5, $6, $7::text::xid8, $8, (SELECT coalesce(max(seq), 0) FROM checkpoints))`,
			id, n.URL, n.Description, nonNil(n.EventTypes), secret.Reveal(), actor, fmt.Sprint(head.TransactionID), head.Position)
		return err
	})
	if err != nil {
		return Endpoint{}, Secret{}, s.conflictOnURL(ctx, err, "create the endpoint")
	}
	e, err := s.Get(ctx, id.String())
	return e, secret, err
}

// conflictOnURL turns a violation of the one-endpoint-per-URL index into an ECONFLICT naming the
// endpoint that has the URL, and wraps anything else with op.
func (s *Endpoints) conflictOnURL(ctx context.Context, err error, op string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "webhook_endpoints_url_key" {
		return &herald.Error{Code: herald.ECONFLICT, Message: "an endpoint with this URL exists already; change or delete it instead",
			Fields: map[string]string{"url": "is the URL of another endpoint"}, Err: err}
	}
	if herald.ErrorCode(err) != herald.EINTERNAL {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// endpointColumns are the columns scanEndpoint reads, in its order.
const endpointColumns = `id::text, url, description, event_types, enabled, disabled_reason, version, created_at,
	created_by, updated_at, previous_secret_until, cursor_position, failing_since, last_success_at, checkpoint_seq`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason, &e.Version,
		&e.CreatedAt, &e.CreatedBy, &e.UpdatedAt, &e.PreviousSecretUntil, &e.Position, &e.FailingSince, &e.LastSuccessAt,
		&e.CheckpointSeq)
	if len(e.EventTypes) == 0 {
		e.EventTypes = nil
	}
	if e.PreviousSecretUntil != nil && !e.PreviousSecretUntil.After(time.Now()) {
		e.PreviousSecretUntil = nil
	}
	return e, err
}

// Get returns the endpoint with id. ENOTFOUND when there is none (or it was deleted).
func (s *Endpoints) Get(ctx context.Context, id string) (Endpoint, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Endpoint{}, notFound(id)
	}
	e, err := scanEndpoint(s.db.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, notFound(id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	return e, nil
}

// List returns every endpoint that is not deleted, oldest first.
func (s *Endpoints) List(ctx context.Context) ([]Endpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE deleted_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(row) })
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// History returns the endpoint's stream: every change of it, in order. ENOTFOUND for an endpoint
// that never was.
func (s *Endpoints) History(ctx context.Context, id string) ([]events.Recorded, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, notFound(id)
	}
	recs, err := s.log.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || recs[0].Type != events.TypeWebhookEndpointCreated {
		return nil, notFound(id)
	}
	return recs, nil
}

func notFound(id string) error {
	return herald.Errorf(herald.ENOTFOUND, "no webhook endpoint %s", id)
}

// Change is an update of an endpoint: the fields set are changed.
type Change struct {
	URL         *string
	Description *string
	EventTypes  *[]string
}

// Update changes the endpoint's URL, description or event types, and records what changed.
// Nothing changes, and nothing is recorded, when every field set already has its value.
// EINVALID, ENOTFOUND, and ECONFLICT as Create, or when the endpoint changed meanwhile.
func (s *Endpoints) Update(ctx context.Context, id string, c Change, actor string) (Endpoint, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	n := NewEndpoint{URL: cur.URL, Description: cur.Description, EventTypes: cur.EventTypes}
	if c.URL != nil {
		n.URL = *c.URL
	}
	if c.Description != nil {
		n.Description = *c.Description
	}
	if c.EventTypes != nil {
		n.EventTypes = *c.EventTypes
	}
	if n, err = s.check(n); err != nil {
		return Endpoint{}, err
	}
	var ev events.WebhookEndpointUpdated
	if n.URL != cur.URL {
		ev.URL = &n.URL
	}
	if n.Description != cur.Description {
		ev.Description = &n.Description
	}
	if !slices.Equal(n.EventTypes, cur.EventTypes) {
		types := nonNil(n.EventTypes)
		ev.EventTypes = &types
	}
	if ev == (events.WebhookEndpointUpdated{}) {
		return cur, nil
	}
	// An endpoint that subscribes to checkpoint.signed now starts after the latest checkpoint,
	// not at those made before while it did not take them.
	err = s.change(ctx, cur, actor, &ev, `url = $3, description = $4, event_types = $5,
		checkpoint_seq = CASE WHEN $6 = ANY(event_types) THEN checkpoint_seq ELSE (SELECT coalesce(max(seq), 0) FROM checkpoints) END`,
		n.URL, n.Description, nonNil(n.EventTypes), wire.WebhookCheckpointSigned)
	if err != nil {
		return Endpoint{}, s.conflictOnURL(ctx, err, "update endpoint "+id)
	}
	return s.Get(ctx, id)
}

// Disable stops delivery to the endpoint, recording who did it and why; its place in the log is
// kept. Disabling a disabled endpoint changes nothing. ENOTFOUND, or ECONFLICT when it changed
// meanwhile.
func (s *Endpoints) Disable(ctx context.Context, id, actor, reason string) (Endpoint, error) {
	cur, err := s.Get(ctx, id)
	if err != nil || !cur.Enabled {
		return cur, err
	}
	ev := &events.WebhookEndpointDisabled{Cause: events.DisabledByOperator, Reason: reason}
	// The lease stays with its holder, which sees the endpoint disabled and stops: freed, it
	// could go to another dispatcher on an enable while the holder still posts its last batch.
	if err := s.change(ctx, cur, actor, ev, `enabled = false, disabled_reason = $3`, describeDisable(actor, reason)); err != nil {
		return Endpoint{}, err
	}
	return s.Get(ctx, id)
}

func describeDisable(actor, reason string) string {
	if reason == "" {
		return "disabled by " + actor
	}
	return "disabled by " + actor + ": " + reason
}

// Enable resumes delivery to a disabled endpoint from where it stopped: the events that happened
// meanwhile are posted, in log order. It forgets the endpoint's failures, so that one disabled
// for failing gets its full time again. ENOTFOUND, or ECONFLICT when it changed meanwhile.
func (s *Endpoints) Enable(ctx context.Context, id, actor string) (Endpoint, error) {
	cur, err := s.Get(ctx, id)
	if err != nil || cur.Enabled {
		return cur, err
	}
	if err := s.change(ctx, cur, actor, &events.WebhookEndpointEnabled{}, `enabled = true, disabled_reason = '', failing_since = NULL`); err != nil {
		return Endpoint{}, err
	}
	return s.Get(ctx, id)
}

// Delete removes the endpoint: nothing is posted to it again, and its pending retries are
// dropped. Its attempts, and its stream in the log, are kept. ENOTFOUND, or ECONFLICT when it
// changed meanwhile.
func (s *Endpoints) Delete(ctx context.Context, id, actor string) error {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	return s.change(ctx, cur, actor, &events.WebhookEndpointDeleted{}, `deleted_at = now(), enabled = false, lease_owner = NULL`)
}

// RotateSecret gives the endpoint a new signing secret, returned this once. For RotationOverlap
// the old one signs too, so that a receiver can switch without missing a request. A rotation
// during the overlap of another replaces the older secret: only the last two sign. ENOTFOUND,
// or ECONFLICT when it changed meanwhile.
func (s *Endpoints) RotateSecret(ctx context.Context, id, actor string) (Endpoint, Secret, error) {
	cur, err := s.Get(ctx, id)
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	until := time.Now().Add(RotationOverlap).UTC().Truncate(time.Microsecond)
	ev := &events.WebhookEndpointSecretRotated{PreviousValidUntil: until}
	err = s.change(ctx, cur, actor, ev, `previous_secret = secret, previous_secret_until = $3, secret = $4`, until, secret.Reveal())
	if err != nil {
		return Endpoint{}, Secret{}, err
	}
	e, err := s.Get(ctx, id)
	return e, secret, err
}

// change appends ev to the endpoint's stream at the version cur was read at, and sets the row's
// columns by set (whose arguments start at $3), in one transaction. The append is the
// transaction's first write, as every append past version 1 must be (see the projector). ECONFLICT
// when the endpoint changed since cur was read.
func (s *Endpoints) change(ctx context.Context, cur Endpoint, actor string, ev events.EndpointEvent, set string, args ...any) error {
	return s.changeIf(ctx, cur, actor, ev, "true", set, args...)
}

// changeIf is change, made only while the endpoint's row meets cond (SQL over its columns):
// ECONFLICT otherwise.
func (s *Endpoints) changeIf(ctx context.Context, cur Endpoint, actor string, ev events.EndpointEvent, cond, set string, args ...any) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		md := events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}
		if _, err := s.log.In(tx).Append(ctx, cur.ID, cur.Version, md, ev); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET `+set+`, version = version + 1, updated_at = now()
			WHERE id = $1 AND version = $2 AND deleted_at IS NULL AND (`+cond+`)`, append([]any{cur.ID, cur.Version}, args...)...)
		if err != nil {
			return fmt.Errorf("%s of endpoint %s: %w", ev.EventType(), cur.ID, err)
		}
		if tag.RowsAffected() != 1 {
			return herald.Errorf(herald.ECONFLICT, "endpoint %s changed meanwhile; read it again", cur.ID)
		}
		if _, deleted := ev.(*events.WebhookEndpointDeleted); deleted {
			// Nothing will be posted to it again: its retries go with it.
			if _, err := tx.Exec(ctx, `DELETE FROM webhook_retries WHERE endpoint_id = $1`, cur.ID); err != nil {
				return fmt.Errorf("drop the retries of endpoint %s: %w", cur.ID, err)
			}
		}
		return nil
	})
}

// nonNil returns types, or an empty list for none: the column holds '{}' for "all".
func nonNil(types []string) []string {
	if types == nil {
		return []string{}
	}
	return types
}
