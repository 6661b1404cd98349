package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/tracing"
)

// SendRequest is a client's request to send a notification, as decoded from the API.
type SendRequest struct {
	Type      string
	Recipient string
	// Subject is an optional template for the email subject.
	Subject string
	Content string
	// HTML is an optional template for the HTML part of an email; Content, when empty, is then
	// generated from it.
	HTML      string
	Variables map[string]any
	// Template, instead of Subject, Content and HTML, names a stored template: "welcome" (its
	// latest version) or "welcome@3".
	Template string
	// Attachments are files to send with an email; never part of a stored template.
	Attachments []Attachment
	// SendAt, if set, is when to send: the notification is scheduled until then (see
	// Limits.MaxScheduleAhead for how far ahead).
	SendAt *time.Time
	// Priority is high, normal or low; empty is normal.
	Priority string
	// IdempotencyKey, if set, makes a retried request safe: the same key with the same request
	// answers with the notification created the first time.
	IdempotencyKey string
}

// Attachment is a file a client sends with an email, as decoded from the API.
type Attachment struct {
	Filename    string
	ContentType string
	// Content is the file's bytes in standard base64, as sent.
	Content string
}

// Accepted is the answer to an accepted request.
type Accepted struct {
	herald.Notification
	// Replayed is true when the request repeated an idempotency key: nothing new was created.
	Replayed bool
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
	// templates resolves the stored templates sends name; nil: sending by name is refused.
	templates Templates
	// now is the server's clock, against which a send_at must be in the future.
	now func() time.Time
	// tracing opens the span of the accepting transaction.
	tracing tracing.Tracing
}

// WithTracing returns a copy of a that opens a span for each notification it records, and stores
// its context with the event and the command.
func (a *Acceptor) WithTracing(t tracing.Tracing) *Acceptor {
	c := *a
	c.tracing = t
	return &c
}

// startAccept opens the span of the transaction that records cmd's notification.
func (a *Acceptor) startAccept(ctx context.Context, cmd commands.SendNotification) (context.Context, trace.Span) {
	if !a.tracing.On() {
		return ctx, tracing.NoSpan()
	}
	return a.tracing.Start(ctx, tracing.SpanAccept, trace.WithAttributes(
		tracing.AttrNotificationID.String(cmd.NotificationID),
		tracing.AttrChannel.String(string(cmd.Channel)),
		tracing.AttrPriority.String(string(cmd.Priority.OrNormal())),
	))
}

// WithClock returns a copy of a whose clock, against which a send_at must be in the future,
// reads now.
func (a *Acceptor) WithClock(now func() time.Time) *Acceptor {
	c := *a
	c.now = now
	return &c
}

// Templates resolves a stored template's reference for a send (see templatestore.Store).
type Templates interface {
	// Resolve returns the version ref names: EINVALID (field "template") for a bad or archived
	// ref, ENOTFOUND for no such template or version.
	Resolve(ctx context.Context, ref string) (templatestore.Version, error)
}

var _ Templates = (*templatestore.Store)(nil)

// WithTemplates returns a copy of a that sends by the stored templates ts resolves.
func (a *Acceptor) WithTemplates(ts Templates) *Acceptor {
	c := *a
	c.templates = ts
	return &c
}

// NewAcceptor returns an acceptor writing through db.
func NewAcceptor(db Beginner, log *events.Log, outbox Outbox, limits Limits) *Acceptor {
	return &Acceptor{db: db, log: log, outbox: outbox, limits: limits, writeTimeout: 10 * time.Second,
		idempotencyTTL: DefaultIdempotencyTTL, now: time.Now}
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
func (a *Acceptor) Accept(ctx context.Context, req SendRequest) (_ Accepted, err error) {
	filled, ref, err := a.fromTemplate(ctx, req)
	var (
		queued *events.NotificationQueued
		files  []attachments.File
	)
	if err == nil {
		queued, files, err = a.validate(filled)
	}
	// A request refused now may have been valid when its key was first used: its template
	// archived since, its send_at passed. A retry of that request replays what it created,
	// so that the client does not send it again under another key.
	if herald.ErrorCode(err) == herald.EINVALID && req.IdempotencyKey != "" && validIdempotencyKey(req.IdempotencyKey) {
		if earlier, rerr := a.replayedByKey(ctx, keyOf(ctx), req); rerr != nil || earlier != nil {
			if rerr != nil {
				return Accepted{}, fmt.Errorf("accept: %w", rerr)
			}
			return Accepted{Notification: *earlier, Replayed: true}, nil
		}
	}
	if err != nil {
		return Accepted{}, err
	}
	queued.Template = ref
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
	cmd := commands.Send(events.Evolve(herald.Notification{}, events.Recorded{StreamID: stream, Version: 1}, queued))
	ctx, span := a.startAccept(ctx, cmd)
	defer func() { endSpan(span, err, "not accepted") }()
	// The event and the command carry the span's context: the relay and the readers of the log
	// continue this trace.
	md.Trace = a.tracing.Carrier(ctx)
	if req.IdempotencyKey == "" {
		if rec, ok, err := a.acceptInOneRoundTrip(ctx, stream, md, queued, files, cmd); ok {
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
			earlier, err := a.claimIdempotencyKey(ctx, tx, keyID, req, queued.Attachments, stream)
			if err != nil || earlier != nil {
				replayed = earlier
				return err
			}
		}
		if err := attachments.Put(ctx, tx, files, queued.SendAt); err != nil {
			return err
		}
		var err error
		if recs, err = a.log.In(tx).Append(ctx, stream, 0, md, queued); err != nil {
			return err
		}
		if queued.SendAt != nil {
			return Schedule(ctx, tx, stream, *queued.SendAt)
		}
		return a.outbox.Send(ctx, tx, cmd)
	})
	switch {
	case err != nil && (herald.ErrorCode(err) == herald.EINVALID || herald.ErrorCode(err) == herald.ETOOLARGE):
		return Accepted{}, err
	case err != nil:
		return Accepted{}, fmt.Errorf("accept %s: %w", stream, err)
	case replayed != nil:
		return Accepted{Notification: *replayed, Replayed: true}, nil
	}
	if queued.SendAt == nil {
		wakeRelay(a.outbox)
	}
	return Accepted{Notification: events.Evolve(herald.Notification{}, recs[0], queued)}, nil
}

// keyOf is the id of the API key ctx carries, under which its idempotency keys are kept.
func keyOf(ctx context.Context) string {
	if p, ok := herald.PrincipalFrom(ctx); ok {
		return p.KeyID
	}
	return anonymousKey
}

// acceptInOneRoundTrip writes the attachments' files, the event and the command (or, for a
// scheduled send, its row in scheduled_notifications) as one pgx batch, which PostgreSQL runs as
// one implicit transaction: a failure of either writes neither. It saves the three round trips
// of BEGIN, a second statement and COMMIT; ok is false when the database or the outbox cannot
// batch, and the caller takes the transaction path.
func (a *Acceptor) acceptInOneRoundTrip(ctx context.Context, stream string, md events.Metadata, queued *events.NotificationQueued, files []attachments.File, cmd commands.SendNotification) (*events.Recorded, bool, error) {
	db, ok := a.db.(batcher)
	outbox, ok2 := a.outbox.(BatchOutbox)
	if !ok || !ok2 {
		return nil, false, nil
	}
	b := &pgx.Batch{}
	attachments.QueuePut(b, files, queued.SendAt)
	rec, err := a.log.QueueStart(b, stream, md, queued)
	if err != nil {
		return nil, true, err
	}
	if queued.SendAt != nil {
		QueueSchedule(b, stream, *queued.SendAt)
	} else if err := outbox.Queue(ctx, b, cmd); err != nil {
		return nil, true, err
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, true, err
	}
	if queued.SendAt == nil {
		wakeRelay(a.outbox)
	}
	return rec, true, nil
}
