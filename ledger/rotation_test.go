package ledger_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// appendOne appends an event of a new stream and waits until the log's n events are visible
// to its consumers (and so to the sealer); it returns the event's id.
func (l *sealedLog) appendOne(t *testing.T, n int) string {
	t.Helper()
	recs, err := events.NewLog(l.db.Pool).Append(t.Context(), uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, l.db, n)
	return recs[0].ID
}

// count returns how many rows table has.
func (l *sealedLog) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := l.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A log sealed with key A, then with key B after a rotation: the sealer with B refuses A's last
// checkpoint, writing nothing, until A is one of its previous keys; verify with both keys passes
// and says which signed what, with either alone it names the first checkpoint of the other;
// a proof after the rotation verifies with B, not with A; and a checkpoint re-signed with a key
// C nobody listed is caught by both the sealer and verify.
func TestCheckpointKeyRotation(t *testing.T) {
	l := newSealedLog(t) // checkpoint 1, key A
	ctx := t.Context()
	keyA := l.key
	pubA := keyA.Public().(ed25519.PublicKey)
	_, keyB, _ := ed25519.GenerateKey(nil)
	pubB := keyB.Public().(ed25519.PublicKey)
	idA, idB := ledger.KeyID(pubA), ledger.KeyID(pubB)

	beforeID := l.appendOne(t, 9)
	if cp, _, err := ledger.NewSealer(l.db.Pool, keyA).Seal(ctx); err != nil || cp == nil || cp.Seq != 2 {
		t.Fatalf("seal with A: %+v, %v", cp, err)
	}
	l.appendOne(t, 10)

	// The key replaced, the old one not listed: refused, naming A's key id and the setting.
	subtrees := l.count(t, "merkle_subtrees")
	cp, _, err := ledger.NewSealer(l.db.Pool, keyB).Seal(ctx)
	if !errors.Is(err, ledger.ErrRefused) || cp != nil {
		t.Fatalf("seal with B over A's checkpoint: %+v, %v; want it refused", cp, err)
	}
	for _, want := range []string{"checkpoint 2", idA, "HERALD_CHECKPOINT_PREVIOUS_KEYS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %s", err, want)
		}
	}
	if n := l.count(t, "checkpoints"); n != 2 || l.count(t, "merkle_subtrees") != subtrees {
		t.Errorf("after the refusal: %d checkpoints, want 2, and the subtrees unchanged", n)
	}

	// A listed as previous: B extends A's checkpoint; then B needs A no more.
	if cp, _, err := ledger.NewSealer(l.db.Pool, keyB).WithPreviousKeys(ledger.NewKeys(pubA)).Seal(ctx); err != nil || cp == nil || cp.Seq != 3 || cp.KeyID != idB {
		t.Fatalf("seal with B, A previous: %+v, %v; want checkpoint 3 signed by B", cp, err)
	}
	afterID := l.appendOne(t, 11)
	if cp, _, err := ledger.NewSealer(l.db.Pool, keyB).Seal(ctx); err != nil || cp == nil || cp.Seq != 4 {
		t.Fatalf("seal with B over its own checkpoint: %+v, %v", cp, err)
	}

	both := ledger.NewKeys(pubA, pubB)
	rep, err := l.verify(t, ledger.VerifyOptions{Keys: both})
	if err != nil {
		t.Fatalf("verify with A and B: %v", err)
	}
	want := []ledger.SignedRange{{KeyID: idA, First: 1, Last: 2}, {KeyID: idB, First: 3, Last: 4}}
	if diff := cmp.Diff(want, rep.Signers); diff != "" || !rep.Signed || rep.Checkpoints != 4 {
		t.Errorf("verify with A and B: signed %v, %d checkpoints; signers (-want +got):\n%s", rep.Signed, rep.Checkpoints, diff)
	}
	rep, err = l.verify(t, ledger.VerifyOptions{Keys: both, FromCheckpoint: 2})
	if err != nil {
		t.Fatalf("verify with A and B from checkpoint 2: %v", err)
	}
	want = []ledger.SignedRange{{KeyID: idA, First: 2, Last: 2}, {KeyID: idB, First: 3, Last: 4}}
	if diff := cmp.Diff(want, rep.Signers); diff != "" {
		t.Errorf("verify from checkpoint 2: signers (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		name string
		keys ledger.Keys
		seq  int64
		id   string
	}{
		{"only B", ledger.NewKeys(pubB), 1, idA},
		{"only A", ledger.NewKeys(pubA), 3, idB},
	} {
		_, err := l.verify(t, ledger.VerifyOptions{Keys: tt.keys})
		var m *ledger.Mismatch
		if !errors.As(err, &m) || m.Field != "signature" || m.Checkpoint != tt.seq || !strings.Contains(m.Reason, tt.id) {
			t.Errorf("verify with %s: %v; want checkpoint %d's signature named, by key %s", tt.name, err, tt.seq, tt.id)
		}
	}

	// A proof of the latest checkpoint is B's; one of checkpoint 2 is A's.
	p, err := ledger.Prove(ctx, l.db.Pool, afterID, 0)
	if err != nil || p.Checkpoint.Seq != 4 {
		t.Fatalf("prove after the rotation: %+v, %v", p, err)
	}
	if err := p.Verify(ledger.NewKeys(pubB)); err != nil {
		t.Errorf("a proof after the rotation, with B: %v", err)
	}
	if err := p.Verify(both); err != nil {
		t.Errorf("a proof after the rotation, with A and B: %v", err)
	}
	var m *ledger.Mismatch
	if err := p.Verify(ledger.NewKeys(pubA)); !errors.As(err, &m) || m.Field != "signature" || !strings.Contains(m.Reason, idB) {
		t.Errorf("a proof after the rotation, with A only: %v; want the signature refused, naming key %s", err, idB)
	}
	old, err := ledger.Prove(ctx, l.db.Pool, beforeID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Verify(both); err != nil || old.Checkpoint.KeyID != idA {
		t.Errorf("a proof of checkpoint 2, with A and B: %v; signed by %s, want A's %s", err, old.Checkpoint.KeyID, idA)
	}

	// Checkpoint 4 re-signed with a key C listed nowhere: verify names it, and the sealer, even
	// with A as a previous key, refuses to extend it.
	_, keyC, _ := ed25519.GenerateKey(nil)
	cps, err := ledger.List(ctx, l.db.Pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := cps[3]
	forged.Sign(keyC)
	l.tamper(t, fmt.Sprintf(`UPDATE checkpoints SET key_id = '%s', signature = '\x%x' WHERE seq = 4`, forged.KeyID, forged.Signature))
	_, err = l.verify(t, ledger.VerifyOptions{Keys: both})
	if !errors.As(err, &m) || m.Field != "signature" || m.Checkpoint != 4 || !strings.Contains(m.Reason, forged.KeyID) {
		t.Errorf("verify of a checkpoint signed by C: %v; want checkpoint 4's signature named, by key %s", err, forged.KeyID)
	}
	l.appendOne(t, 12)
	cp, _, err = ledger.NewSealer(l.db.Pool, keyB).WithPreviousKeys(ledger.NewKeys(pubA)).Seal(ctx)
	if !errors.Is(err, ledger.ErrRefused) || cp != nil || !strings.Contains(err.Error(), forged.KeyID) {
		t.Errorf("seal over a checkpoint signed by C: %+v, %v; want it refused, naming key %s", cp, err, forged.KeyID)
	}
	if n := l.count(t, "checkpoints"); n != 4 {
		t.Errorf("%d checkpoints after the refusal, want 4", n)
	}
}

// A private key given where a public key belongs is refused without being printed.
func TestParsePublicKeyDoesNotPrintAPrivateKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	for _, s := range []string{fmt.Sprintf("%x", []byte(priv)), "0x" + fmt.Sprintf("%x", []byte(priv)), ledger.EncodePublicKey(ed25519.PublicKey(priv)),
		base64.RawURLEncoding.EncodeToString(priv)} {
		_, err := ledger.ParsePublicKey(s)
		if err == nil || strings.Contains(err.Error(), s) || strings.Contains(err.Error(), s[:16]) {
			t.Errorf("ParsePublicKey of a private key: %v; want an error that does not print it", err)
		}
	}
	if _, err := ledger.ParsePublicKey("no/such/file.pub"); err == nil || !strings.Contains(err.Error(), "no/such/file.pub") {
		t.Errorf("ParsePublicKey of a missing file: %v; want the file named", err)
	}
}
