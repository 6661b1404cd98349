package bounces

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Outcomes of an inbound report: what became of it.
const (
	// OutcomeReceived: kept, and being handled (or its handling was cut short).
	OutcomeReceived = "received"
	// OutcomeHardBounce, OutcomeSoftBounce, OutcomeComplaint: recorded on the notification's
	// stream as NotificationBounced or NotificationComplained.
	OutcomeHardBounce = "hard_bounce"
	OutcomeSoftBounce = "soft_bounce"
	OutcomeComplaint  = "complaint"
	// OutcomeDuplicate: the notification has this report already; nothing was written.
	OutcomeDuplicate = "duplicate"
	// OutcomeIgnored: matched, but nothing to record (a DSN saying delivered, or a
	// notification that was never sent).
	OutcomeIgnored = "ignored"
	// OutcomeUnmatched: a report that names no notification Herald sent.
	OutcomeUnmatched = "unmatched"
	// OutcomeUnparsable: mail that is no delivery status notification or feedback report.
	OutcomeUnparsable = "unparsable"
	// OutcomeFailed: recording it failed (the database); the sender was asked to try again.
	OutcomeFailed = "failed"
)

// Outcomes lists every outcome.
var Outcomes = []string{OutcomeReceived, OutcomeHardBounce, OutcomeSoftBounce, OutcomeComplaint, OutcomeDuplicate,
	OutcomeIgnored, OutcomeUnmatched, OutcomeUnparsable, OutcomeFailed}

// MaxStoredBytes is how much of a message is kept: reports are small, and what a bounce returns
// of the original message is rarely needed whole. A longer one is kept truncated, and says so.
const MaxStoredBytes = 256 << 10

// MaxListPage is the most reports a list returns.
const MaxListPage = 1000

// DB is what the store needs of PostgreSQL: a *pgxpool.Pool.
type DB interface {
	events.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Inbound is a kept report: the mail as it arrived, and what became of it.
type Inbound struct {
	ID           int64
	ReceivedAt   time.Time
	RemoteAddr   string
	EnvelopeFrom string
	EnvelopeTo   []string
	Size         int64
	// Raw is the message's first MaxStoredBytes; Truncated says whether there was more. A list
	// leaves it empty.
	Raw            []byte
	Truncated      bool
	MessageID      string
	Outcome        string
	NotificationID string
	Detail         string
}

// Store keeps the inbound reports (table inbound_reports).
type Store struct {
	db events.Querier
}

// NewStore returns the reports kept in db.
func NewStore(db events.Querier) *Store { return &Store{db: db} }

// Envelope is how a message arrived: from where, MAIL FROM and the accepted RCPT TOs, and its
// size.
type Envelope struct {
	RemoteAddr string
	From       string
	To         []string
	// Size is the message's length in bytes, when only its beginning is handed on with the
	// envelope; 0 means the message handed on is all of it.
	Size int64
}

// add keeps raw, received with env, as a report being handled, and returns its id.
func (s *Store) add(ctx context.Context, env Envelope, raw []byte, messageID string) (int64, error) {
	kept, size := raw, max(env.Size, int64(len(raw)))
	if len(kept) > MaxStoredBytes {
		kept = kept[:MaxStoredBytes]
	}
	truncated := int64(len(kept)) < size
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO inbound_reports (remote_addr, envelope_from, envelope_to, size, raw, truncated, message_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		text(env.RemoteAddr), text(env.From), texts(nonNil(env.To)), size, kept, truncated, text(messageID)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("keep inbound report: %w", err)
	}
	return id, nil
}

// texts is text of each of ss.
func texts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = text(s)
	}
	return out
}

// settle records what became of report id, through q (the transaction of its events, if any).
func settle(ctx context.Context, q events.Querier, id int64, outcome, notificationID, detail string) error {
	var nid any
	if notificationID != "" {
		nid = notificationID
	}
	if _, err := q.Exec(ctx, `UPDATE inbound_reports SET outcome = $2, notification_id = $3, detail = $4 WHERE id = $1`,
		id, outcome, nid, text(detail)); err != nil {
		return fmt.Errorf("record outcome of inbound report %d: %w", id, err)
	}
	return nil
}

// Filter selects reports to list.
type Filter struct {
	// Outcome, when set, is the only outcome listed.
	Outcome string
	// Limit is the most listed, 1 to MaxListPage; 0 means 100.
	Limit int
	// Before lists the reports older than this id (the next page); 0: from the newest.
	Before int64
}

// Validate returns an EINVALID error naming the fields of f that are wrong.
func (f Filter) Validate() error {
	fields := map[string]string{}
	if f.Outcome != "" && !slices.Contains(Outcomes, f.Outcome) {
		fields["outcome"] = fmt.Sprintf("unknown outcome %q: want one of %s", f.Outcome, strings.Join(Outcomes, ", "))
	}
	if f.Limit < 0 || f.Limit > MaxListPage {
		fields["limit"] = "want 1 to " + strconv.Itoa(MaxListPage)
	}
	if f.Before < 0 {
		fields["before"] = "want a report id"
	}
	if len(fields) > 0 {
		return &herald.Error{Code: herald.EINVALID, Message: "invalid report filter", Fields: fields}
	}
	return nil
}

const inboundColumns = `id, received_at, remote_addr, envelope_from, envelope_to, size, truncated, message_id, outcome,
	coalesce(notification_id::text, ''), detail`

func scanInbound(row pgx.Row, extra ...any) (Inbound, error) {
	var r Inbound
	err := row.Scan(append([]any{&r.ID, &r.ReceivedAt, &r.RemoteAddr, &r.EnvelopeFrom, &r.EnvelopeTo, &r.Size, &r.Truncated,
		&r.MessageID, &r.Outcome, &r.NotificationID, &r.Detail}, extra...)...)
	return r, err
}

// List returns the reports f selects, newest first, without their raw messages, and the id to
// list the next page before (0: this is the last).
func (s *Store) List(ctx context.Context, f Filter) ([]Inbound, int64, error) {
	if err := f.Validate(); err != nil {
		return nil, 0, err
	}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	rows, err := s.db.Query(ctx, `SELECT `+inboundColumns+` FROM inbound_reports
		WHERE ($1 = '' OR outcome = $1) AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, f.Outcome, f.Before, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("list inbound reports: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Inbound, error) { return scanInbound(row) })
	if err != nil {
		return nil, 0, fmt.Errorf("list inbound reports: %w", err)
	}
	var next int64
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	return list, next, nil
}

// ParseReportID reads a report id as an operator writes it; it fails with EINVALID.
func ParseReportID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, herald.Errorf(herald.EINVALID, "report id %q: want a positive number", id)
	}
	return n, nil
}

// Get returns report n with its raw message. It fails with ENOTFOUND when there is none (or it
// was swept).
func (s *Store) Get(ctx context.Context, n int64) (Inbound, error) {
	var raw []byte
	r, err := scanInbound(s.db.QueryRow(ctx, `SELECT `+inboundColumns+`, raw FROM inbound_reports WHERE id = $1`, n), &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Inbound{}, herald.Errorf(herald.ENOTFOUND, "no inbound report %d", n)
	}
	if err != nil {
		return Inbound{}, fmt.Errorf("get inbound report %d: %w", n, err)
	}
	r.Raw = raw
	return r, nil
}

// Sweep deletes the reports received more than retention ago, a batch at a time so that no
// transaction is long, and returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, retention time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := s.db.Exec(ctx, `DELETE FROM inbound_reports WHERE id IN (
			SELECT id FROM inbound_reports WHERE received_at < now() - make_interval(secs => $1) ORDER BY received_at LIMIT 1000)`,
			retention.Seconds())
		if err != nil {
			return total, fmt.Errorf("sweep inbound reports: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
