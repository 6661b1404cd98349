package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Status maintains notification_status: one row per notification, folded with events.Evolve.
type Status struct {
	// Table is where the rows go: notification_status unless a rebuild says otherwise.
	Table string
}

const statusTable = "notification_status"

func (Status) Name() string { return statusTable }

func (s Status) table() string {
	if s.Table == "" {
		return statusTable
	}
	return s.Table
}

// Into returns the projection writing to table.
func (s Status) Into(table string) Rebuildable { return Status{Table: table} }

// TableName is the table the projection maintains.
func (s Status) TableName() string { return s.table() }

// Key identifies a row.
func (Status) Key() []string { return []string{"notification_id"} }

const statusColumns = `notification_id::text, channel, recipient, status, attempts, round_start, attempt_open,
	attempt_started_at, last_error, provider, provider_message_id, version, position,
	created_at, updated_at, recoveries, send_at, priority`

func scanStatus(row pgx.Row) (herald.Notification, error) {
	var (
		n       herald.Notification
		started *time.Time
		sendAt  *time.Time
	)
	err := row.Scan(&n.ID, &n.Channel, &n.Recipient, &n.Status, &n.Attempts, &n.RoundStart, &n.AttemptOpen,
		&started, &n.LastError, &n.Provider, &n.ProviderMessageID, &n.Version, &n.Position,
		&n.CreatedAt, &n.UpdatedAt, &n.Recoveries, &sendAt, &n.Priority)
	if started != nil {
		n.AttemptStartedAt = *started
	}
	if sendAt != nil {
		n.SendAt = *sendAt
	}
	return n, err
}

// Apply folds r into the notification's row. The row's version is the guard: an event at or
// below it has been applied already, and one past the next version is a *GapError.
func (s Status) Apply(ctx context.Context, tx pgx.Tx, r events.Recorded) error {
	return s.ApplyBatch(ctx, tx, []events.Recorded{r})
}

// ApplyBatch folds recs, in delivery order, into their notifications' rows: it reads the rows
// the batch touches in one statement and writes them back in another.
func (s Status) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	recs = events.NotificationOnly(recs)
	if len(recs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(recs))
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if !seen[r.StreamID] {
			seen[r.StreamID] = true
			ids = append(ids, r.StreamID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT `+statusColumns+` FROM `+s.table()+
		` WHERE notification_id = ANY($1::uuid[]) ORDER BY notification_id FOR UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("%s: read %d rows: %w", s.table(), len(ids), err)
	}
	current, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (herald.Notification, error) { return scanStatus(row) })
	if err != nil {
		return fmt.Errorf("%s: read %d rows: %w", s.table(), len(ids), err)
	}
	state := make(map[string]herald.Notification, len(ids))
	for _, n := range current {
		state[n.ID] = n
	}
	changed := make(map[string]bool, len(ids))
	for _, r := range recs {
		n := state[r.StreamID]
		if next, err := follows(s.Name(), n.Version, r); err != nil || !next {
			if err != nil {
				return err
			}
			continue
		}
		e, err := r.Event()
		if err != nil {
			return fmt.Errorf("%s of %s: %w", s.table(), r.StreamID, err)
		}
		state[r.StreamID] = events.Evolve(n, r, e)
		changed[r.StreamID] = true
	}
	if len(changed) == 0 {
		return nil
	}

	var c statusRows
	for _, id := range ids {
		if changed[id] {
			c.add(state[id])
		}
	}
	_, err = tx.Exec(ctx, `
INSERT INTO `+s.table()+` (notification_id, channel, recipient, status, attempts, round_start, attempt_open,
	attempt_started_at, last_error, provider, provider_message_id, version, position, created_at, updated_at,
	recoveries, send_at, priority)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bool[],
	$8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::timestamptz[],
	$15::timestamptz[], $16::int[], $17::timestamptz[], $18::text[])
ON CONFLICT (notification_id) DO UPDATE SET
	channel = excluded.channel, recipient = excluded.recipient, status = excluded.status,
	attempts = excluded.attempts, round_start = excluded.round_start, attempt_open = excluded.attempt_open,
	attempt_started_at = excluded.attempt_started_at, last_error = excluded.last_error,
	provider = excluded.provider, provider_message_id = excluded.provider_message_id,
	version = excluded.version, position = excluded.position, updated_at = excluded.updated_at,
	recoveries = excluded.recoveries, send_at = excluded.send_at, priority = excluded.priority
WHERE `+s.table()+`.version < excluded.version`,
		c.id, c.channel, c.recipient, c.status, c.attempts, c.roundStart, c.attemptOpen, c.startedAt,
		c.lastError, c.provider, c.providerMsgID, c.version, c.position, c.createdAt, c.updatedAt, c.recoveries, c.sendAt, c.priority)
	if err != nil {
		return fmt.Errorf("%s: write %d rows: %w", s.table(), len(c.id), err)
	}
	return nil
}

// statusRows holds rows column by column, as unnest wants them.
type statusRows struct {
	id, channel, recipient, status, lastError, provider, providerMsgID, priority []string
	attempts, roundStart, recoveries                                             []int32
	attemptOpen                                                                  []bool
	startedAt, sendAt                                                            []*time.Time
	version, position                                                            []int64
	createdAt, updatedAt                                                         []time.Time
}

func (c *statusRows) add(n herald.Notification) {
	var started *time.Time
	if !n.AttemptStartedAt.IsZero() {
		started = &n.AttemptStartedAt
	}
	c.id = append(c.id, n.ID)
	c.channel = append(c.channel, string(n.Channel))
	c.recipient = append(c.recipient, n.Recipient)
	c.status = append(c.status, string(n.Status))
	c.attempts = append(c.attempts, int32(n.Attempts))
	c.roundStart = append(c.roundStart, int32(n.RoundStart))
	c.attemptOpen = append(c.attemptOpen, n.AttemptOpen)
	c.startedAt = append(c.startedAt, started)
	c.lastError = append(c.lastError, n.LastError)
	c.provider = append(c.provider, n.Provider)
	c.providerMsgID = append(c.providerMsgID, n.ProviderMessageID)
	c.version = append(c.version, n.Version)
	c.position = append(c.position, n.Position)
	c.createdAt = append(c.createdAt, n.CreatedAt)
	c.updatedAt = append(c.updatedAt, n.UpdatedAt)
	c.recoveries = append(c.recoveries, int32(n.Recoveries))
	var sendAt *time.Time
	if !n.SendAt.IsZero() {
		sendAt = &n.SendAt
	}
	c.sendAt = append(c.sendAt, sendAt)
	c.priority = append(c.priority, string(n.Priority.OrNormal()))
}
