package ledger_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/ledger"
)

// Every event a checkpoint covers has a proof that checks out with the sealer's public key alone;
// a proof whose event, path or checkpoint was changed does not; an event after the last
// checkpoint has none yet.
func TestProveEveryEventOfACheckpoint(t *testing.T) {
	l := newSealedLog(t)
	ctx := t.Context()
	keys := ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	rows, err := l.db.Pool.Query(ctx, `SELECT event_id::text FROM event_log ORDER BY transaction_id, global_position`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != 8 {
		t.Fatalf("%d events, want 8", len(ids))
	}
	for i, id := range ids {
		p, err := ledger.Prove(ctx, l.db.Pool, id, 0)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if p.LeafIndex != uint64(i) || p.Checkpoint.Seq != 1 || p.Checkpoint.TreeSize != 8 {
			t.Errorf("event %d: leaf %d of checkpoint %d (%d leaves)", i, p.LeafIndex, p.Checkpoint.Seq, p.Checkpoint.TreeSize)
		}
		if err := p.Verify(keys); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		for name, change := range map[string]func(p *ledger.Proof){
			"data":      func(p *ledger.Proof) { p.Event.Data = append([]byte(nil), `{"attempt": 9}`...) },
			"index":     func(p *ledger.Proof) { p.LeafIndex = (p.LeafIndex + 1) % 8 },
			"root":      func(p *ledger.Proof) { p.Checkpoint.Root[0] ^= 1 },
			"tree size": func(p *ledger.Proof) { p.Checkpoint.TreeSize = 9 },
		} {
			bad := *p
			bad.Path = append([]ledger.Hash(nil), p.Path...)
			change(&bad)
			var m *ledger.Mismatch
			if err := bad.Verify(keys); !errors.As(err, &m) {
				t.Errorf("event %d with its %s changed: %v, want a mismatch", i, name, err)
			}
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if p, err := ledger.Prove(ctx, l.db.Pool, ids[3], 1); err != nil || p.Verify(ledger.NewKeys(other.Public().(ed25519.PublicKey))) == nil {
		t.Errorf("a proof verified with another key (%v)", err)
	}

	recs, err := events.NewLog(l.db.Pool).Append(ctx, uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Prove(ctx, l.db.Pool, recs[0].ID, 0); !errors.Is(err, ledger.ErrNotCovered) {
		t.Errorf("prove an event after the last checkpoint: %v, want ErrNotCovered", err)
	}
}

// A stream's proofs come in one pass: one for each event the latest checkpoint covers, in
// version order, and a count of those after it; a stream the log lacks is not found.
func TestProveStream(t *testing.T) {
	l := newSealedLog(t)
	ctx := t.Context()
	keys := ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	if _, err := events.NewLog(l.db.Pool).Append(ctx, l.streams["a"], 3, events.Metadata{}, &events.NotificationSent{Attempt: 3}); err != nil {
		t.Fatal(err)
	}
	proofs, unsealed, err := ledger.ProveStream(ctx, l.db.Pool, l.streams["a"])
	if err != nil {
		t.Fatal(err)
	}
	if len(proofs) != 3 || unsealed != 1 {
		t.Fatalf("%d proofs, %d unsealed; want 3 and 1", len(proofs), unsealed)
	}
	for i, p := range proofs {
		if p.Event.Version != int64(i+1) || p.Position != l.row(t, "a", int64(i+1)).position {
			t.Errorf("proof %d is of version %d at %d", i, p.Event.Version, p.Position)
		}
		if err := p.Verify(keys); err != nil {
			t.Errorf("proof of version %d: %v", i+1, err)
		}
	}
	if _, _, err := ledger.ProveStream(ctx, l.db.Pool, uuid.NewString()); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("prove a stream the log lacks: %v, want ErrNotFound", err)
	}
}
