package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// rewriteWhole is what a superuser does to rewrite history and have it sealed again: every
// checkpoint deleted, and stream a's version 2 changed with its stream's hashes recomputed, so
// that every chain link holds.
func (l *sealedLog) rewriteWhole(t *testing.T) {
	t.Helper()
	a := l.streams["a"]
	l.tamper(t, `DELETE FROM checkpoints`,
		fmt.Sprintf(`UPDATE event_log SET data = jsonb_set(data, '{worker}', '"forger"') WHERE stream_id = '%s' AND stream_version = 2`, a))
	for v := 1; v <= 3; v++ {
		l.tamper(t, fmt.Sprintf(`UPDATE event_log e SET hash = event_log_hash(coalesce(p.hash, '\x%064x'::bytea), e.event_id, e.stream_id,
				e.stream_version, e.event_type, e.occurred_at, e.data, e.metadata)
			FROM event_log e2 LEFT JOIN event_log p ON p.stream_id = e2.stream_id AND p.stream_version = e2.stream_version - 1
			WHERE e.global_position = e2.global_position AND e.stream_id = '%s' AND e.stream_version = %d`, 0, a, v))
	}
}

// With the last checkpoint it signed kept outside the database, the sealer refuses to sign a
// log whose checkpoints were deleted and whose history was rewritten, where without it it signs
// the forgery as seq 1; and verify with the witness names the missing checkpoint, where the key
// alone passes.
func TestSealerRefusesCheckpointsItDidNotWitness(t *testing.T) {
	l := newSealedLog(t)
	ctx := t.Context()
	cps, err := ledger.List(ctx, l.db.Pool, 0)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints: %v, %v", cps, err)
	}
	witnessed := cps[0]
	witness := func(context.Context) (*ledger.Checkpoint, error) { return &witnessed, nil }

	// The same checkpoint of another log (its id differs) is not this log's witness.
	elsewhere := witnessed
	elsewhere.LogID[0] ^= 1
	if _, _, err := ledger.NewSealer(l.db.Pool, l.key).WithWitness(func(context.Context) (*ledger.Checkpoint, error) { return &elsewhere, nil }).Seal(ctx); !errors.Is(err, ledger.ErrRefused) {
		t.Errorf("seal with another log's checkpoint as witness: %v, want it refused", err)
	}
	if _, err := l.verify(t, ledger.VerifyOptions{Witnessed: ledger.Kept(elsewhere)}); err == nil || !strings.Contains(err.Error(), "witness") {
		t.Errorf("verify with another log's checkpoint as witness: %v, want it named", err)
	}

	// The witnessed checkpoint is the database's latest: the sealer goes on.
	if _, _, err := ledger.NewSealer(l.db.Pool, l.key).WithWitness(witness).Seal(ctx); err != nil {
		t.Fatalf("seal on top of the witnessed checkpoint: %v", err)
	}

	l.rewriteWhole(t)
	if _, err := l.verify(t, ledger.VerifyOptions{}); err != nil {
		t.Fatalf("the rewritten log with no checkpoint should pass verify without a witness (what the witness is for): %v", err)
	}
	_, err = l.verify(t, ledger.VerifyOptions{Witnessed: ledger.Kept(witnessed)})
	var m *ledger.Mismatch
	if !errors.As(err, &m) || m.Field != "witness" || m.Checkpoint != 1 {
		t.Errorf("verify with the witness: %v, want checkpoint 1 named as missing", err)
	}

	cp, _, err := ledger.NewSealer(l.db.Pool, l.key).WithWitness(witness).Seal(ctx)
	if !errors.Is(err, ledger.ErrRefused) || cp != nil {
		t.Fatalf("seal of the rewritten log: %+v, %v; want it refused", cp, err)
	}
	if cps, err := ledger.List(ctx, l.db.Pool, 0); err != nil || len(cps) != 0 {
		t.Errorf("checkpoints after the refusal: %v, %v; want none written", cps, err)
	}

	// A database checkpoint of the witnessed seq but another root is refused too.
	if cp, _, err := ledger.NewSealer(l.db.Pool, l.key).Seal(ctx); err != nil || cp == nil || cp.Seq != 1 {
		t.Fatalf("seal without a witness: %+v, %v; want the forgery signed as seq 1", cp, err)
	}
	if _, _, err := ledger.NewSealer(l.db.Pool, l.key).WithWitness(witness).Seal(ctx); !errors.Is(err, ledger.ErrRefused) {
		t.Errorf("seal over a checkpoint 1 that is not the witnessed one: %v, want it refused", err)
	}
	_, err = l.verify(t, ledger.VerifyOptions{Witnessed: ledger.Kept(witnessed)})
	if !errors.As(err, &m) || m.Field != "witness" || m.Checkpoint != 1 {
		t.Errorf("verify with the witness: %v, want checkpoint 1's root named", err)
	}
}

// The sealer does not extend a checkpoint it did not sign: one written with another key, with a
// frontier that hashes to its root, is refused, and nothing is written on top of it.
func TestSealerRefusesACheckpointItDidNotSign(t *testing.T) {
	l := newSealedLog(t)
	ctx := t.Context()
	_, other, _ := ed25519.GenerateKey(nil)
	cps, err := ledger.List(ctx, l.db.Pool, 0)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints: %v, %v", cps, err)
	}
	forged := cps[0]
	forged.Seq = 2
	forged.Sign(other)
	if _, err := l.db.Pool.Exec(ctx, `INSERT INTO checkpoints (seq, tree_size, last_transaction_id, last_position, root, frontier, key_id, signature, created_at)
		VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9)`, forged.Seq, forged.TreeSize, fmt.Sprint(forged.LastTransactionID),
		forged.LastPosition, forged.Root[:], forged.Frontier, forged.KeyID, forged.Signature, forged.CreatedAt); err != nil {
		t.Fatal(err)
	}
	if _, err := events.NewLog(l.db.Pool).Append(ctx, uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, l.db, 9)
	cp, _, err := ledger.NewSealer(l.db.Pool, l.key).Seal(ctx)
	if !errors.Is(err, ledger.ErrRefused) || cp != nil || !strings.Contains(err.Error(), "checkpoint 2") {
		t.Fatalf("seal on top of another key's checkpoint: %+v, %v; want checkpoint 2 refused", cp, err)
	}
	if cps, err := ledger.List(ctx, l.db.Pool, 0); err != nil || len(cps) != 2 {
		t.Errorf("checkpoints after the refusal: %d, %v; want 2", len(cps), err)
	}
}
