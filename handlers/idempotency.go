package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// DefaultIdempotencyTTL is how long an idempotency key is remembered by default.
const DefaultIdempotencyTTL = 24 * time.Hour

// anonymousKey scopes the idempotency keys of requests made without an API key (tests, and
// servers built without authentication).
const anonymousKey = "00000000-0000-0000-0000-000000000000"

// claimIdempotencyKey records key for req and stream, inside tx. If the same API key used it
// before, within its time to live, it returns the notification it created then — or EINVALID if
// that was another request.
func (a *Acceptor) claimIdempotencyKey(ctx context.Context, tx pgx.Tx, keyID string, req SendRequest, files []events.AttachmentRef, stream string) (*herald.Notification, error) {
	hash, err := requestHash(req, files)
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
	return a.accepted(ctx, a.log.In(tx), req.IdempotencyKey, earlierID)
}

// accepted is the answer the request that claimed key got: notification id as it was accepted.
func (a *Acceptor) accepted(ctx context.Context, log *events.Log, key, id string) (*herald.Notification, error) {
	recs, err := log.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("idempotency key %q names notification %s, which has no events", key, id)
	}
	e, err := recs[0].Event()
	if err != nil {
		return nil, err
	}
	n := events.Evolve(herald.Notification{}, recs[0], e)
	return &n, nil
}

// replayedByKey is the notification an earlier request with req's idempotency key and the same
// content created, within the key's time to live, if there is one. A send by a stored template
// asks it when the template no longer serves the request (archived, or a new version wants
// another variable): the retry of a request that was accepted answers as the first did,
// whatever became of its template since.
func (a *Acceptor) replayedByKey(ctx context.Context, keyID string, req SendRequest) (*herald.Notification, error) {
	channel, _ := herald.ParseChannel(req.Type)
	refs, _, _ := a.checkAttachments(req, channel, map[string]string{})
	hash, err := requestHash(req, refs)
	if err != nil {
		return nil, err
	}
	var earlier *herald.Notification
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		var earlierID string
		err := tx.QueryRow(ctx, `SELECT notification_id::text FROM idempotency_keys
			WHERE api_key_id = $1 AND key = $2 AND request_hash = $3 AND created_at >= now() - $4::interval`,
			keyID, req.IdempotencyKey, hash, a.idempotencyTTL.String()).Scan(&earlierID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("idempotency key: %w", err)
		}
		earlier, err = a.accepted(ctx, a.log.In(tx), req.IdempotencyKey, earlierID)
		return err
	})
	return earlier, err
}

// requestHash identifies a request's content: the same fields and values give the same hash.
// Attachments (files, as validated) count by name, type and the hash of their bytes, in order.
// html, template, attachments, send_at and a priority other than normal count only when sent, so that a request without them hashes as it did before
// emails had an HTML part or templates were stored, and a key claimed then still answers its
// retries.
func requestHash(req SendRequest, files []events.AttachmentRef) ([]byte, error) {
	fields := map[string]any{
		"type": req.Type, "recipient": req.Recipient, "subject": req.Subject,
		"content": req.Content, "variables": req.Variables,
	}
	if req.HTML != "" {
		fields["html"] = req.HTML
	}
	if req.Template != "" {
		// The reference as the client gave it: "welcome" stays the same request when the
		// template gets a new version.
		fields["template"] = req.Template
	}
	if req.SendAt != nil {
		// The instant, whatever offset it was written with.
		fields["send_at"] = req.SendAt.UTC().Format(time.RFC3339Nano)
	}
	if req.Priority != "" && req.Priority != string(herald.PriorityNormal) {
		// Normal, said or not, hashes as a request did before there were priorities. Any other
		// value counts as written, even one that is no priority ("urgent"): such a request is
		// not the one the key was claimed with, and must not be answered with its notification.
		fields["priority"] = req.Priority
	}
	if len(files) > 0 {
		named := make([][3]string, len(files))
		for i, f := range files {
			named[i] = [3]string{f.Filename, f.ContentType, f.SHA256}
		}
		fields["attachments"] = named
	}
	b, err := json.Marshal(fields)
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
