package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templates"
)

// SendRequest is a client's request to send a notification, as decoded from the API.
type SendRequest struct {
	Type      string
	Recipient string
	// Subject is an optional template for the email subject.
	Subject   string
	Content   string
	Variables map[string]any
	// IdempotencyKey, if set, makes a retried request safe: the same key with the same request
	// answers with the notification created the first time.
	IdempotencyKey string
}

// Accepted is the answer to an accepted request.
type Accepted struct {
	herald.Notification
	// Replayed is true when the request repeated an idempotency key: nothing new was created.
	Replayed bool
}

// Limits bound what a client may ask to send.
type Limits struct {
	MaxContentBytes   int // raw content template
	MaxEmailBodyBytes int // rendered email body
	MaxSMSBodyChars   int // rendered SMS body, in characters
	MaxSubjectChars   int // rendered email subject
}

// DefaultLimits are generous for email and follow the usual gateway limit for SMS (10 segments).
var DefaultLimits = Limits{
	MaxContentBytes:   32 << 10,
	MaxEmailBodyBytes: 64 << 10,
	MaxSMSBodyChars:   1600,
	MaxSubjectChars:   255,
}

// DefaultSubject is the subject of an email sent without one.
const DefaultSubject = "Notification"

// Outbox stores a command inside a database transaction; a relay hands it to the workers once the
// transaction commits, so the command exists exactly when the event that caused it does.
type Outbox interface {
	Send(ctx context.Context, tx pgx.Tx, cmd commands.SendNotification) error
}

// BatchOutbox is an outbox that can also queue a command in a pgx batch (see router.Outbox).
type BatchOutbox interface {
	Queue(ctx context.Context, b *pgx.Batch, cmd commands.SendNotification) error
}

// Beginner starts database transactions: a *pgxpool.Pool.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// batcher sends pgx batches: a *pgxpool.Pool.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Acceptor accepts notifications: validates and renders them, then records NotificationQueued and
// queues the SendNotification command in one transaction.
type Acceptor struct {
	db     Beginner
	log    *events.Log
	outbox Outbox
	limits Limits
	// writeTimeout bounds the transaction; it runs detached from the request so that a client
	// hanging up cannot leave Herald unsure whether it accepted.
	writeTimeout time.Duration
	// idempotencyTTL is how long an idempotency key is remembered.
	idempotencyTTL time.Duration
}

// DefaultIdempotencyTTL is how long an idempotency key is remembered by default.
const DefaultIdempotencyTTL = 24 * time.Hour

// NewAcceptor returns an acceptor writing through db.
func NewAcceptor(db Beginner, log *events.Log, outbox Outbox, limits Limits) *Acceptor {
	return &Acceptor{db: db, log: log, outbox: outbox, limits: limits, writeTimeout: 10 * time.Second,
		idempotencyTTL: DefaultIdempotencyTTL}
}

// WithIdempotencyTTL returns a copy of a that remembers idempotency keys for ttl.
func (a *Acceptor) WithIdempotencyTTL(ttl time.Duration) *Acceptor {
	c := *a
	c.idempotencyTTL = ttl
	return &c
}

// Accept validates req and records it, for the API key ctx carries (see herald.WithPrincipal). It
// returns the accepted notification (status pending); an EINVALID *herald.Error naming the
// offending fields, nothing written; or another error if the write failed, nothing written either.
//
// With an idempotency key, the first request records the notification and the key together; a
// later one with the same key and the same request (from the same API key, within the key's time
// to live) answers with that notification, Replayed, and creates nothing; with another request it
// is EINVALID. Concurrent requests with one key wait for each other: one creates, the others
// replay.
func (a *Acceptor) Accept(ctx context.Context, req SendRequest) (Accepted, error) {
	queued, err := a.Validate(req)
	if err != nil {
		return Accepted{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Accepted{}, fmt.Errorf("accept: notification id: %w", err)
	}
	stream := id.String()
	md := events.Metadata{CorrelationID: herald.CorrelationID(ctx), Actor: "api"}
	keyID := anonymousKey
	if p, ok := herald.PrincipalFrom(ctx); ok {
		queued.APIKey = &events.APIKeyRef{ID: p.KeyID, Name: p.Name}
		md.Actor = p.Actor()
		keyID = p.KeyID
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.writeTimeout)
	defer cancel()
	cmd := commands.SendNotification{NotificationID: stream, Channel: queued.Channel}
	if req.IdempotencyKey == "" {
		if rec, ok, err := a.acceptInOneRoundTrip(ctx, stream, md, queued, cmd); ok {
			if err != nil {
				return Accepted{}, fmt.Errorf("accept %s: %w", stream, err)
			}
			return Accepted{Notification: events.Evolve(herald.Notification{}, *rec, queued)}, nil
		}
	}
	var (
		recs     []events.Recorded
		replayed *herald.Notification
	)
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		if req.IdempotencyKey != "" {
			earlier, err := a.claimIdempotencyKey(ctx, tx, keyID, req, stream)
			if err != nil || earlier != nil {
				replayed = earlier
				return err
			}
		}
		var err error
		if recs, err = a.log.In(tx).Append(ctx, stream, 0, md, queued); err != nil {
			return err
		}
		return a.outbox.Send(ctx, tx, cmd)
	})
	switch {
	case err != nil && herald.ErrorCode(err) == herald.EINVALID:
		return Accepted{}, err
	case err != nil:
		return Accepted{}, fmt.Errorf("accept %s: %w", stream, err)
	case replayed != nil:
		return Accepted{Notification: *replayed, Replayed: true}, nil
	}
	return Accepted{Notification: events.Evolve(herald.Notification{}, recs[0], queued)}, nil
}

// acceptInOneRoundTrip writes the event and the command as one pgx batch, which PostgreSQL runs as
// one implicit transaction: a failure of either writes neither. It saves the three round trips
// of BEGIN, a second statement and COMMIT; ok is false when the database or the outbox cannot
// batch, and the caller takes the transaction path.
func (a *Acceptor) acceptInOneRoundTrip(ctx context.Context, stream string, md events.Metadata, queued *events.NotificationQueued, cmd commands.SendNotification) (*events.Recorded, bool, error) {
	db, ok := a.db.(batcher)
	outbox, ok2 := a.outbox.(BatchOutbox)
	if !ok || !ok2 {
		return nil, false, nil
	}
	b := &pgx.Batch{}
	rec, err := a.log.QueueStart(b, stream, md, queued)
	if err != nil {
		return nil, true, err
	}
	if err := outbox.Queue(ctx, b, cmd); err != nil {
		return nil, true, err
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, true, err
	}
	return rec, true, nil
}

// anonymousKey scopes the idempotency keys of requests made without an API key (tests, and
// servers built without authentication).
const anonymousKey = "00000000-0000-0000-0000-000000000000"

// claimIdempotencyKey records key for req and stream, inside tx. If the same API key used it
// before, within its time to live, it returns the notification it created then — or EINVALID if
// that was another request.
func (a *Acceptor) claimIdempotencyKey(ctx context.Context, tx pgx.Tx, keyID string, req SendRequest, stream string) (*herald.Notification, error) {
	hash, err := requestHash(req)
	if err != nil {
		return nil, err
	}
	// One statement claims the key, or takes over an expired one, or finds the request that holds
	// it, and locks its row until tx ends. Reading the row in a second statement would leave a
	// window in which a purge deletes an expired key between the two, and the read finds nothing.
	// A concurrent request with the same key waits here until the first one commits or rolls back;
	// a purge waits for tx, and then finds the key fresh.
	var (
		earlierHash []byte
		earlierID   string
	)
	err = tx.QueryRow(ctx, `INSERT INTO idempotency_keys AS k (api_key_id, key, request_hash, notification_id)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (api_key_id, key) DO UPDATE SET
			request_hash = CASE WHEN k.created_at < now() - $5::interval THEN excluded.request_hash ELSE k.request_hash END,
			notification_id = CASE WHEN k.created_at < now() - $5::interval THEN excluded.notification_id ELSE k.notification_id END,
			created_at = CASE WHEN k.created_at < now() - $5::interval THEN now() ELSE k.created_at END
		RETURNING request_hash, notification_id::text`,
		keyID, req.IdempotencyKey, hash, stream, a.idempotencyTTL.String()).Scan(&earlierHash, &earlierID)
	if err != nil {
		return nil, fmt.Errorf("idempotency key: %w", err)
	}
	if earlierID == stream {
		// A new key, or an expired one now standing for this request.
		return nil, nil
	}
	if !bytes.Equal(earlierHash, hash) {
		return nil, herald.Invalid("the idempotency key was used with another request", map[string]string{
			"Idempotency-Key": "was used before with a different request; use a new key for a new request",
		})
	}
	recs, err := a.log.In(tx).Load(ctx, earlierID)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("idempotency key %q names notification %s, which has no events", req.IdempotencyKey, earlierID)
	}
	e, err := recs[0].Event()
	if err != nil {
		return nil, err
	}
	// The answer the first request got: the notification as it was accepted.
	n := events.Evolve(herald.Notification{}, recs[0], e)
	return &n, nil
}

// requestHash identifies a request's content: the same fields and values give the same hash.
func requestHash(req SendRequest) ([]byte, error) {
	b, err := json.Marshal(map[string]any{
		"type": req.Type, "recipient": req.Recipient, "subject": req.Subject,
		"content": req.Content, "variables": req.Variables,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency: hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// PurgeIdempotencyKeys forgets the idempotency keys older than their time to live.
func (a *Acceptor) PurgeIdempotencyKeys(ctx context.Context, db events.Querier) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval`, a.idempotencyTTL.String())
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Validate checks req against every rule and renders its templates. All offending fields are
// reported at once, as an EINVALID *herald.Error.
func (a *Acceptor) Validate(req SendRequest) (*events.NotificationQueued, error) {
	fields := map[string]string{}
	if k := req.IdempotencyKey; k != "" && !validIdempotencyKey(k) {
		fields["Idempotency-Key"] = "must be 1 to 255 printable ASCII characters"
	}
	channel, err := herald.ParseChannel(req.Type)
	if err != nil {
		if req.Type == "" {
			fields["type"] = "is required: email or sms"
		} else {
			fields["type"] = fmt.Sprintf("unknown type %q: want email or sms", req.Type)
		}
	} else if err := herald.ValidateRecipient(channel, req.Recipient); err != nil {
		maps.Copy(fields, herald.ErrorFields(err))
	}

	switch {
	case strings.TrimSpace(req.Content) == "":
		fields["content"] = "is required"
	case len(req.Content) > a.limits.MaxContentBytes:
		fields["content"] = fmt.Sprintf("is %d bytes, more than the limit of %d", len(req.Content), a.limits.MaxContentBytes)
	}
	if req.Subject != "" && channel == herald.ChannelSMS {
		fields["subject"] = "is only for email"
	}
	// PostgreSQL cannot store U+0000 in JSON, and no message needs one.
	for name, v := range map[string]string{"content": req.Content, "subject": req.Subject} {
		if strings.ContainsRune(v, 0) {
			fields[name] = "contains a NUL character"
		}
	}
	if path := nulPath(req.Variables, "variables"); path != "" {
		fields[path] = "contains a NUL character"
	}
	if path := hugeNumberPath(req.Variables, "variables"); path != "" {
		fields[path] = "is a number too large or too small to store: send it as a string"
	}

	q := &events.NotificationQueued{
		Channel:   channel,
		Recipient: req.Recipient,
		Subject:   req.Subject,
		Content:   req.Content,
		Variables: req.Variables,
	}
	if _, bad := fields["content"]; !bad && channel != "" {
		maxOut := a.limits.MaxEmailBodyBytes
		if channel == herald.ChannelSMS {
			// Characters, checked below; a character is at most 4 bytes.
			maxOut = 4 * a.limits.MaxSMSBodyChars
		}
		body, err := templates.Render("content", req.Content, req.Variables, maxOut)
		switch n := utf8.RuneCountInString(body); {
		case err != nil && channel == herald.ChannelSMS && strings.HasPrefix(herald.ErrorFields(err)["content"], "renders to more than"):
			fields["content"] = fmt.Sprintf("renders to more than the SMS limit of %d characters", a.limits.MaxSMSBodyChars)
		case err != nil:
			mergeFields(fields, err)
		case channel == herald.ChannelSMS && n > a.limits.MaxSMSBodyChars:
			fields["content"] = fmt.Sprintf("renders to %d characters, more than the SMS limit of %d", n, a.limits.MaxSMSBodyChars)
		case strings.TrimSpace(body) == "":
			fields["content"] = "renders to an empty message"
		case strings.ContainsRune(body, 0):
			// A template literal can write what the content itself may not hold.
			fields["content"] = "renders to text with a NUL character"
		}
		q.Body = body
	}
	if channel == herald.ChannelEmail {
		subject := req.Subject
		if strings.TrimSpace(subject) == "" {
			subject = DefaultSubject
		}
		rendered, err := templates.Render("subject", subject, req.Variables, 4*a.limits.MaxSubjectChars)
		switch {
		case err != nil:
			mergeFields(fields, err)
		case strings.IndexFunc(rendered, breaksHeader) >= 0:
			// A line break in a header would let a client write headers of its own.
			fields["subject"] = "must be a single line of text, without control characters"
		case utf8.RuneCountInString(rendered) > a.limits.MaxSubjectChars:
			fields["subject"] = fmt.Sprintf("renders to more than %d characters", a.limits.MaxSubjectChars)
		}
		q.RenderedSubject = rendered
	}

	if len(fields) > 0 {
		return nil, herald.Invalid("the notification is invalid", fields)
	}
	return q, nil
}

func validIdempotencyKey(k string) bool {
	if len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// breaksHeader reports whether r has no place in a mail header: control characters, and the
// Unicode line and paragraph separators some clients treat as line breaks.
func breaksHeader(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// Bounds of the numbers in variables. PostgreSQL stores JSON numbers as numeric, which refuses
// magnitudes past about 1e131072 and writes a number like 1e131071 out in full (128 KB from 8
// bytes): a written exponent is bounded, and so is the magnitude, however it is written.
const (
	maxWrittenExponent = 1000
	maxMagnitude       = 100_000
)

// hugeNumberPath returns the path of the first number in v past those bounds.
func hugeNumberPath(v any, path string) string {
	switch v := v.(type) {
	case json.Number:
		written, magnitude := exponentOf(string(v))
		if written > maxWrittenExponent || magnitude > maxMagnitude {
			return path
		}
	case map[string]any:
		for k, e := range v {
			if p := hugeNumberPath(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := hugeNumberPath(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// exponentOf returns the magnitudes of a JSON number's written exponent and of its decimal
// exponent: the written one shifted by the digits before the point, or by the zeros after it.
func exponentOf(n string) (written, magnitude int) {
	mantissa, exp, _ := strings.Cut(strings.ToLower(n), "e")
	e := 0
	if exp != "" {
		v, err := strconv.Atoi(exp)
		if err != nil {
			return math.MaxInt, math.MaxInt // too long to be an int: far out of range
		}
		e = v
	}
	written = abs(e)
	mantissa = strings.TrimLeft(mantissa, "-")
	whole, frac, _ := strings.Cut(mantissa, ".")
	if w := strings.TrimLeft(whole, "0"); w != "" {
		e += len(w) - 1
	} else if f := strings.TrimLeft(frac, "0"); f != "" {
		e -= len(frac) - len(f) + 1
	} else {
		return written, 0 // zero
	}
	return written, abs(e)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// nulPath returns the path of the first key or string in v that contains U+0000, or "".
func nulPath(v any, path string) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsRune(v, 0) {
			return path
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) {
				return path
			}
			if p := nulPath(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := nulPath(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// mergeFields copies the offending fields of an EINVALID error; any other error is reported
// against the field it came from by the caller's render call.
func mergeFields(fields map[string]string, err error) {
	f := herald.ErrorFields(err)
	if len(f) == 0 {
		fields["content"] = herald.ErrorMessage(err)
		return
	}
	for k, v := range f {
		if _, seen := fields[k]; !seen {
			fields[k] = v
		}
	}
}
