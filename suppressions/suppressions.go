// Package suppressions keeps the suppression list: the recipients Herald does not send to, on
// which channel, why and until when. Every change is an event of a stream per channel and
// recipient in the log (events.RecipientSuppressed, events.RecipientUnsuppressed), appended with
// the stream's expected version in the transaction that writes the list's row (table
// suppressions), which is what a worker reads before each attempt.
package suppressions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// MaxReason caps the reason of a change, in characters.
const MaxReason = 2000

// DB is what the store needs of PostgreSQL: a *pgxpool.Pool.
type DB interface {
	events.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Suppression is one entry of the list, as the store keeps it.
type Suppression struct {
	Channel herald.Channel
	// Recipient is the key: see Key.
	Recipient string
	// Cause is one of events.SuppressionCauses; Reason says more.
	Cause          string
	Reason         string
	NotificationID string
	CreatedAt      time.Time
	CreatedBy      string
	UpdatedAt      time.Time
	ExpiresAt      *time.Time
	RemovedAt      *time.Time
	// Version is the version of the entry's stream in the log.
	Version int64
	// Active is true while the suppression holds: not removed, not expired.
	Active bool
}

// streamNamespace makes a suppression's stream id from its channel and key (UUID v5), so that
// every process finds the same stream for the same recipient without looking it up.
var streamNamespace = uuid.MustParse("6c1f3a52-53b7-4f0e-9a8e-3d8f2f0c5b11")

// Stream is the id of the stream of recipient's suppression on channel; recipient must be a key.
func Stream(channel herald.Channel, key string) string {
	return uuid.NewSHA1(streamNamespace, []byte(string(channel)+"\x00"+key)).String()
}

// Key is the form in which the list holds recipient: the address of an email recipient in lower
// case, without its display name ("Ann <Ann@Example.com>" is ann@example.com); an SMS number
// trimmed. It is EINVALID, with the field "recipient", for a recipient the channel would not
// take.
func Key(channel herald.Channel, recipient string) (string, error) {
	if err := herald.ValidateRecipient(channel, recipient); err != nil {
		return "", err
	}
	switch channel {
	case herald.ChannelEmail:
		a, err := mail.ParseAddress(recipient)
		if err != nil {
			return "", herald.Invalid("invalid email recipient", map[string]string{"recipient": err.Error()})
		}
		return strings.ToLower(a.Address), nil
	default:
		return strings.TrimSpace(recipient), nil
	}
}

// Store keeps the list.
type Store struct {
	db  DB
	log *events.Log
	now func() time.Time
}

// New returns the list stored in db.
func New(db DB) *Store { return &Store{db: db, log: events.NewLog(db), now: time.Now} }

// Add is an operator's suppression of a recipient.
type Add struct {
	Channel   herald.Channel
	Recipient string
	// Reason is required: why the recipient must not receive.
	Reason string
	// ExpiresAt, if set, must be in the future: the suppression lapses then.
	ExpiresAt *time.Time
	// ExpiresIn, if set, must be positive: the suppression lapses that long after it is added.
	// It stands instead of ExpiresAt; giving both is EINVALID.
	ExpiresIn time.Duration
}

// Add suppresses a.Recipient on a.Channel by actor's decision (cause manual) and returns the
// entry. An entry that holds already is replaced: its cause, reason and expiry become these.
// EINVALID, naming the fields, and nothing written, for a bad channel, recipient, reason or
// expiry (expires_at, expires_in).
func (s *Store) Add(ctx context.Context, a Add, actor string) (Suppression, error) {
	now := s.now()
	if problems := a.Problems(now); len(problems) > 0 {
		return Suppression{}, herald.Invalid("invalid suppression: "+joinFields(problems), problems)
	}
	key, _ := Key(a.Channel, a.Recipient)
	if a.ExpiresIn > 0 {
		at := now.Add(a.ExpiresIn)
		a.ExpiresAt = &at
	}
	ev := &events.RecipientSuppressed{Channel: a.Channel, Recipient: key, Cause: events.SuppressedManual,
		Reason: strings.TrimSpace(a.Reason), ExpiresAt: utc(a.ExpiresAt)}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		_, err := s.suppress(ctx, tx, ev, actor, true)
		return err
	})
	if err != nil {
		return Suppression{}, err
	}
	return s.Get(ctx, a.Channel, key)
}

// Problems returns what is wrong with a, by field (channel, recipient, reason, expires_at,
// expires_in), at the instant now: none when Add would take it. An edge that refuses part of a
// request itself can report the rest with it.
func (a Add) Problems(now time.Time) map[string]string {
	problems := map[string]string{}
	if !slices.Contains(herald.Channels, a.Channel) {
		problems["channel"] = fmt.Sprintf("unknown channel %q: want email or sms", a.Channel)
	} else if _, err := Key(a.Channel, a.Recipient); err != nil {
		problems["recipient"] = fieldOf(err, "recipient")
	}
	if p := reasonProblem(a.Reason); p != "" {
		problems["reason"] = p
	}
	switch {
	case a.ExpiresAt != nil && a.ExpiresIn != 0:
		problems["expires_at"] = "give one expiry, a time or a duration, not both"
		problems["expires_in"] = "give one expiry, a time or a duration, not both"
	case a.ExpiresAt != nil && !a.ExpiresAt.After(now):
		problems["expires_at"] = "must be in the future"
	case a.ExpiresIn < 0:
		problems["expires_in"] = "must be a positive duration, such as 720h"
	}
	return problems
}

// SuppressIn suppresses recipient on channel for good, inside tx, because of what a report
// said: cause is events.SuppressedHardBounce or events.SuppressedComplaint, reason the report's
// words, notificationID the notification it was about. A recipient suppressed for good already
// is left as it is, with nothing appended. It serves as the bounce listener's Suppressor.
func (s *Store) SuppressIn(ctx context.Context, tx pgx.Tx, channel herald.Channel, recipient, cause, reason, notificationID string) error {
	key, err := Key(channel, recipient)
	if err != nil {
		return fmt.Errorf("suppress %s recipient: %w", channel, err)
	}
	ev := &events.RecipientSuppressed{Channel: channel, Recipient: key, Cause: cause, Reason: truncate(reason),
		NotificationID: notificationID}
	_, err = s.suppress(ctx, tx, ev, "system:"+cause, false)
	return err
}

// OptOut suppresses an SMS recipient who asked for no more messages (cause opt_out). An entry
// that holds for good already is left as it is.
func (s *Store) OptOut(ctx context.Context, recipient, detail string) error {
	key, err := Key(herald.ChannelSMS, recipient)
	if err != nil {
		return fmt.Errorf("opt out: %w", err)
	}
	ev := &events.RecipientSuppressed{Channel: herald.ChannelSMS, Recipient: key, Cause: events.SuppressedOptOut, Reason: truncate(detail)}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		_, err := s.suppress(ctx, tx, ev, "recipient", false)
		return err
	})
}

// OptIn lifts an SMS recipient's own opt-out when they ask to receive again. A suppression for
// another cause (a report, an operator) stays: only an operator removes those.
func (s *Store) OptIn(ctx context.Context, recipient, detail string) error {
	key, err := Key(herald.ChannelSMS, recipient)
	if err != nil {
		return fmt.Errorf("opt in: %w", err)
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		cur, ok, err := s.lock(ctx, tx, herald.ChannelSMS, key)
		if err != nil || !ok || !cur.Active || cur.Cause != events.SuppressedOptOut {
			return err
		}
		return s.unsuppress(ctx, tx, cur, "recipient", truncate(detail))
	})
}

// Remove lifts the suppression of recipient on channel by actor's decision, with reason.
// ENOTFOUND when none holds; EINVALID without a reason.
func (s *Store) Remove(ctx context.Context, channel herald.Channel, recipient, actor, reason string) (Suppression, error) {
	key, err := s.key(channel, recipient)
	if err != nil {
		return Suppression{}, err
	}
	if p := reasonProblem(reason); p != "" {
		return Suppression{}, herald.Invalid("reason "+p, map[string]string{"reason": p})
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		cur, ok, err := s.lock(ctx, tx, channel, key)
		if err != nil {
			return err
		}
		if !ok || !cur.Active {
			return notFound(channel, key)
		}
		return s.unsuppress(ctx, tx, cur, actor, strings.TrimSpace(reason))
	})
	if err != nil {
		return Suppression{}, err
	}
	return s.Get(ctx, channel, key)
}

// suppress appends ev to its stream and writes the row, inside tx. Unless replace is set, a
// suppression that holds for good already is left as it is and appended is false.
func (s *Store) suppress(ctx context.Context, tx pgx.Tx, ev *events.RecipientSuppressed, actor string, replace bool) (appended bool, err error) {
	cur, exists, err := s.lock(ctx, tx, ev.Channel, ev.Recipient)
	if err != nil {
		return false, err
	}
	if exists && cur.Active && cur.ExpiresAt == nil && !replace {
		return false, nil
	}
	stream := Stream(ev.Channel, ev.Recipient)
	md := events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}
	recs, err := s.log.In(tx).Append(ctx, stream, cur.Version, md, ev)
	if err != nil {
		return false, fmt.Errorf("suppress %s %s: %w", ev.Channel, ev.Recipient, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO suppressions (channel, recipient, stream_id, version, cause, reason,
			notification_id, created_at, created_by, updated_at, expires_at, removed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10, NULL)
		ON CONFLICT (channel, recipient) DO UPDATE SET version = EXCLUDED.version, cause = EXCLUDED.cause,
			reason = EXCLUDED.reason, notification_id = EXCLUDED.notification_id, created_at = EXCLUDED.created_at,
			created_by = EXCLUDED.created_by, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at,
			removed_at = NULL`,
		ev.Channel, ev.Recipient, stream, recs[0].Version, ev.Cause, ev.Reason, nullUUID(ev.NotificationID),
		recs[0].Time, actor, ev.ExpiresAt)
	if err != nil {
		return false, fmt.Errorf("suppress %s %s: %w", ev.Channel, ev.Recipient, err)
	}
	return true, nil
}

// unsuppress appends RecipientUnsuppressed to cur's stream and marks its row removed, inside tx.
func (s *Store) unsuppress(ctx context.Context, tx pgx.Tx, cur Suppression, actor, reason string) error {
	ev := &events.RecipientUnsuppressed{Channel: cur.Channel, Recipient: cur.Recipient, Reason: reason}
	md := events.Metadata{Actor: actor, CorrelationID: herald.CorrelationID(ctx)}
	recs, err := s.log.In(tx).Append(ctx, Stream(cur.Channel, cur.Recipient), cur.Version, md, ev)
	if err != nil {
		return fmt.Errorf("unsuppress %s %s: %w", cur.Channel, cur.Recipient, err)
	}
	_, err = tx.Exec(ctx, `UPDATE suppressions SET version = $3, removed_at = $4, updated_at = $4
		WHERE channel = $1 AND recipient = $2`, cur.Channel, cur.Recipient, recs[0].Version, recs[0].Time)
	if err != nil {
		return fmt.Errorf("unsuppress %s %s: %w", cur.Channel, cur.Recipient, err)
	}
	return nil
}

// lock takes the entry of key on channel for the rest of tx, so that concurrent changes of one
// recipient (two bounces at once) are made one after the other, each at its stream's version.
// ok is false when the recipient was never on the list.
func (s *Store) lock(ctx context.Context, tx pgx.Tx, channel herald.Channel, key string) (Suppression, bool, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, Stream(channel, key)); err != nil {
		return Suppression{}, false, fmt.Errorf("lock suppression of %s %s: %w", channel, key, err)
	}
	cur, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM suppressions WHERE channel = $1 AND recipient = $2`, channel, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Suppression{}, false, nil
	}
	if err != nil {
		return Suppression{}, false, fmt.Errorf("suppression of %s %s: %w", channel, key, err)
	}
	return cur, true, nil
}

// Lookup returns the suppression that holds for recipient on channel now, if one does: what a
// worker asks before each attempt. One primary-key lookup.
func (s *Store) Lookup(ctx context.Context, channel herald.Channel, recipient string) (Suppression, bool, error) {
	key, err := Key(channel, recipient)
	if err != nil {
		// A recipient the channel would not take was refused when it was sent; none is suppressed.
		return Suppression{}, false, nil
	}
	sup, err := scan(s.db.QueryRow(ctx, lookupQuery, channel, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Suppression{}, false, nil
	}
	if err != nil {
		return Suppression{}, false, fmt.Errorf("suppression of %s %s: %w", channel, key, err)
	}
	return sup, true, nil
}

// Found is a lookup queued in a pgx batch (QueueLookup), filled in once the batch has run:
// Holds is true when Suppression holds for the recipient.
type Found struct {
	Suppression Suppression
	Holds       bool
}

// QueueLookup queues, in b, Lookup's question about recipient on channel; the answer is in the
// Found it returns once b has run.
func (s *Store) QueueLookup(b *pgx.Batch, channel herald.Channel, recipient string) *Found {
	f := &Found{}
	key, err := Key(channel, recipient)
	if err != nil {
		// As in Lookup: a recipient the channel would not take was refused when it was sent.
		return f
	}
	b.Queue(lookupQuery, channel, key).QueryRow(func(row pgx.Row) error {
		sup, err := scan(row)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("suppression of %s %s: %w", channel, key, err)
		}
		f.Suppression, f.Holds = sup, true
		return nil
	})
	return f
}

// lookupQuery is Lookup's statement: the entry of $2 on $1, if it holds now.
const lookupQuery = `SELECT ` + columns + ` FROM suppressions
	WHERE channel = $1 AND recipient = $2 AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())`

// Get returns the entry of recipient on channel, whether it holds or not. ENOTFOUND when the
// recipient was never on the list.
func (s *Store) Get(ctx context.Context, channel herald.Channel, recipient string) (Suppression, error) {
	key, err := s.key(channel, recipient)
	if err != nil {
		return Suppression{}, err
	}
	sup, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM suppressions WHERE channel = $1 AND recipient = $2`, channel, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Suppression{}, notFound(channel, key)
	}
	if err != nil {
		return Suppression{}, fmt.Errorf("suppression of %s %s: %w", channel, key, err)
	}
	return sup, nil
}

// History returns the stream of recipient's suppression on channel: every change, in order.
// ENOTFOUND when the recipient was never on the list.
func (s *Store) History(ctx context.Context, channel herald.Channel, recipient string) ([]events.Recorded, error) {
	key, err := s.key(channel, recipient)
	if err != nil {
		return nil, err
	}
	recs, err := s.log.Load(ctx, Stream(channel, key))
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, notFound(channel, key)
	}
	return recs, nil
}

// key checks channel and recipient given by an operator and returns the recipient's key.
func (s *Store) key(channel herald.Channel, recipient string) (string, error) {
	if !slices.Contains(herald.Channels, channel) {
		return "", herald.Invalid(fmt.Sprintf("unknown channel %q", channel),
			map[string]string{"channel": fmt.Sprintf("unknown channel %q: want email or sms", channel)})
	}
	return Key(channel, recipient)
}

// columns are the columns scan reads, in its order.
const columns = `channel, recipient, cause, reason, coalesce(notification_id::text, ''), created_at, created_by,
	updated_at, expires_at, removed_at, version, removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())`

func scan(row pgx.Row) (Suppression, error) {
	var s Suppression
	err := row.Scan(&s.Channel, &s.Recipient, &s.Cause, &s.Reason, &s.NotificationID, &s.CreatedAt, &s.CreatedBy,
		&s.UpdatedAt, &s.ExpiresAt, &s.RemovedAt, &s.Version, &s.Active)
	return s, err
}

func notFound(channel herald.Channel, key string) error {
	return herald.Errorf(herald.ENOTFOUND, "%s %s is not suppressed", channel, key)
}

func reasonProblem(reason string) string {
	switch r := strings.TrimSpace(reason); {
	case r == "":
		return "is required: say why"
	case !utf8.ValidString(r):
		return "is not valid UTF-8"
	case utf8.RuneCountInString(r) > MaxReason:
		return fmt.Sprintf("is longer than %d characters", MaxReason)
	}
	return ""
}

// truncate keeps a report's words within MaxReason characters.
func truncate(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if utf8.RuneCountInString(s) <= MaxReason {
		return s
	}
	return string([]rune(s)[:MaxReason])
}

func fieldOf(err error, field string) string {
	var e *herald.Error
	if errors.As(err, &e) && e.Fields[field] != "" {
		return e.Fields[field]
	}
	return err.Error()
}

func joinFields(problems map[string]string) string {
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(problems)) {
		parts = append(parts, f+" "+problems[f])
	}
	return strings.Join(parts, "; ")
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	return s
}
