package ledger_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// After a rotation from A to B, KeyUntil holds A to its last checkpoint: the log verifies with
// A's range ending there (or at the rotation point), and a range on the wrong side of a
// checkpoint fails naming it. A checkpoint signed later with A — appended by a sealer given the
// leaked key, or re-signed in place as the owner — verifies with both keys, and fails with
// A's range, naming its seq and A's key id, also when the walk starts from a checkpoint.
func TestKeyUntilHoldsTheOldKeyToItsRange(t *testing.T) {
	l := newSealedLog(t) // checkpoint 1, key A
	ctx := t.Context()
	keyA := l.key
	pubA := keyA.Public().(ed25519.PublicKey)
	_, keyB, _ := ed25519.GenerateKey(nil)
	pubB := keyB.Public().(ed25519.PublicKey)
	idA, idB := ledger.KeyID(pubA), ledger.KeyID(pubB)
	both := ledger.NewKeys(pubA, pubB)
	seal := func(key ed25519.PrivateKey, previous ed25519.PublicKey, n int, seq int64) {
		t.Helper()
		l.appendOne(t, n)
		cp, _, err := ledger.NewSealer(l.db.Pool, key).WithPreviousKeys(ledger.NewKeys(previous)).Seal(ctx)
		if err != nil || cp == nil || cp.Seq != seq {
			t.Fatalf("seal checkpoint %d: %+v, %v", seq, cp, err)
		}
	}
	seal(keyA, pubA, 9, 2)  // A's last checkpoint
	seal(keyB, pubA, 10, 3) // the rotation point
	seal(keyB, pubB, 11, 4)

	for _, until := range []int64{2, 3} {
		ranges := ledger.KeyRanges{idA: until}
		rep, err := l.verify(t, ledger.VerifyOptions{Keys: both, KeyUntil: ranges})
		if err != nil {
			t.Fatalf("verify with A up to %d: %v", until, err)
		}
		if rep.Checkpoints != 4 || !rep.Signed || !cmp.Equal(rep.KeyUntil, ranges) {
			t.Errorf("verify with A up to %d: %d checkpoints, signed %v, ranges %v", until, rep.Checkpoints, rep.Signed, rep.KeyUntil)
		}
	}
	keyUntil := func(err error, seq int64, id string) bool {
		var m *ledger.Mismatch
		return errors.As(err, &m) && m.Field == "key_until" && m.Checkpoint == seq && strings.Contains(m.Reason, id) &&
			strings.Contains(m.Reason, "--key-until")
	}
	for _, tt := range []struct {
		name   string
		ranges ledger.KeyRanges
		from   int64
		seq    int64
		id     string
	}{
		{"A up to 1, before its last checkpoint", ledger.KeyRanges{idA: 1}, 0, 2, idA},
		{"B up to the rotation point, before its last", ledger.KeyRanges{idB: 3}, 0, 4, idB},
		{"B up to the rotation point, from checkpoint 3", ledger.KeyRanges{idB: 3}, 3, 4, idB},
		{"A up to 1, from checkpoint 2", ledger.KeyRanges{idA: 1}, 2, 2, idA},
	} {
		if _, err := l.verify(t, ledger.VerifyOptions{Keys: both, KeyUntil: tt.ranges, FromCheckpoint: tt.from}); !keyUntil(err, tt.seq, tt.id) {
			t.Errorf("verify with %s: %v; want checkpoint %d named, key_until, by key %s", tt.name, err, tt.seq, tt.id)
		}
	}

	// The leaked key A signs checkpoint 5 through a sealer that lists B as its previous key.
	seal(keyA, pubB, 12, 5)
	rep, err := l.verify(t, ledger.VerifyOptions{Keys: both})
	if err != nil {
		t.Fatalf("verify with A and B, no range, of A's checkpoint 5: %v", err)
	}
	want := []ledger.SignedRange{{KeyID: idA, First: 1, Last: 2}, {KeyID: idB, First: 3, Last: 4}, {KeyID: idA, First: 5, Last: 5}}
	if diff := cmp.Diff(want, rep.Signers); diff != "" {
		t.Errorf("verify with A and B, no range: signers (-want +got):\n%s", diff)
	}
	for _, from := range []int64{0, 3, 4, 5} {
		if _, err := l.verify(t, ledger.VerifyOptions{Keys: both, KeyUntil: ledger.KeyRanges{idA: 2}, FromCheckpoint: from}); !keyUntil(err, 5, idA) {
			t.Errorf("verify from checkpoint %d with A up to 2 of A's checkpoint 5: %v; want checkpoint 5 named, key_until, by key %s", from, err, idA)
		}
	}

	// Checkpoint 4 re-signed with A as the owner: named first.
	cps, err := ledger.List(ctx, l.db.Pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := cps[3]
	forged.Sign(keyA)
	l.tamper(t, fmt.Sprintf(`UPDATE checkpoints SET key_id = '%s', signature = '\x%x' WHERE seq = 4`, forged.KeyID, forged.Signature))
	if _, err := l.verify(t, ledger.VerifyOptions{Keys: both}); err != nil {
		t.Fatalf("verify with A and B, no range, of checkpoint 4 re-signed with A: %v", err)
	}
	if _, err := l.verify(t, ledger.VerifyOptions{Keys: both, KeyUntil: ledger.KeyRanges{idA: 2}}); !keyUntil(err, 4, idA) {
		t.Errorf("verify with A up to 2 of checkpoint 4 re-signed with A: %v; want checkpoint 4 named, key_until, by key %s", err, idA)
	}
}

// KEY=SEQ names a given key by its key id or as --public-key takes it; a malformed value, an
// unknown key, a SEQ below 1 and a key named twice are refused, and no error repeats a private
// key given in KEY's or SEQ's place.
func TestParseKeyRanges(t *testing.T) {
	pubA, privA, _ := ed25519.GenerateKey(nil)
	pubB, _, _ := ed25519.GenerateKey(nil)
	pubC, _, _ := ed25519.GenerateKey(nil)
	idA, idB, idC := ledger.KeyID(pubA), ledger.KeyID(pubB), ledger.KeyID(pubC)
	keys := ledger.NewKeys(pubA, pubB)
	file := filepath.Join(t.TempDir(), "b.pub")
	if err := os.WriteFile(file, []byte(ledger.EncodePublicKey(pubB)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b64A, hexPriv := ledger.EncodePublicKey(pubA), fmt.Sprintf("%x", []byte(privA))

	for _, tt := range []struct {
		values []string
		want   ledger.KeyRanges
	}{
		{nil, ledger.KeyRanges{}},
		{[]string{idA + "=40"}, ledger.KeyRanges{idA: 40}},
		{[]string{strings.ToUpper(idA) + "=40", idB + "=52"}, ledger.KeyRanges{idA: 40, idB: 52}},
		{[]string{b64A + "=40"}, ledger.KeyRanges{idA: 40}}, // base64's padding, then the '='
		{[]string{fmt.Sprintf("%x=7", []byte(pubA))}, ledger.KeyRanges{idA: 7}},
		{[]string{file + "=1"}, ledger.KeyRanges{idB: 1}},
	} {
		got, err := ledger.ParseKeyRanges(tt.values, keys)
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("ParseKeyRanges(%q): %v, %v; want %v", tt.values, got, err, tt.want)
		}
	}

	for _, tt := range []struct {
		values []string
		keys   ledger.Keys
		want   string
	}{
		{[]string{idA}, keys, "KEY=SEQ"},
		{[]string{idA + "="}, keys, "KEY=SEQ"},
		{[]string{b64A}, keys, "KEY=SEQ"}, // its padding is no SEQ
		{[]string{idA + "=0"}, keys, `SEQ "0"`},
		{[]string{idA + "=-3"}, keys, `SEQ "-3"`},
		{[]string{idA + "=forty"}, keys, `SEQ "forty"`},
		{[]string{idC + "=4"}, keys, "key " + idC + " is not one given with --public-key (given: "},
		{[]string{ledger.EncodePublicKey(pubC) + "=4"}, keys, "key " + idC + " is not one given"},
		{[]string{idA + "=4"}, ledger.Keys{}, "none was given"},
		{[]string{"no/such/file.pub=4"}, keys, "no/such/file.pub"},
		{[]string{idA + "=4", b64A + "=9"}, keys, "key " + idA + " is given twice"},
		{[]string{hexPriv + "=4"}, keys, "KEY is not a key id"},
		{[]string{hexPriv}, keys, "KEY=SEQ"},
		{[]string{idA + "=" + hexPriv}, keys, "SEQ: want"},
		{[]string{ledger.EncodePublicKey(ed25519.PublicKey(privA)) + "=4"}, keys, "KEY is not a key id"},
	} {
		_, err := ledger.ParseKeyRanges(tt.values, tt.keys)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKeyRanges(%.40q…): %v; want an error saying %q", tt.values, err, tt.want)
			continue
		}
		for _, secret := range []string{hexPriv[:16], hexPriv[64:80], ledger.EncodePublicKey(ed25519.PublicKey(privA))[:16]} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseKeyRanges: %v repeats the private key", err)
			}
		}
	}
}

// KeyUntil is applied only to signatures checked with Keys: a range for a key not among them —
// or with no Keys at all, when no signature is checked — would be reported as held while it
// held nothing, so Verify refuses it before reading the log, naming the key.
func TestVerifyRefusesKeyUntilWithoutItsKey(t *testing.T) {
	l := newSealedLog(t) // checkpoint 1, key A
	pubA := l.key.Public().(ed25519.PublicKey)
	pubB, _, _ := ed25519.GenerateKey(nil)
	idA, idB := ledger.KeyID(pubA), ledger.KeyID(pubB)
	for _, tt := range []struct {
		name     string
		keys     ledger.Keys
		keyUntil ledger.KeyRanges
		want     string
	}{
		{"no keys", ledger.Keys{}, ledger.KeyRanges{idA: 1}, "key " + idA + " is held to a range, but no key is given"},
		{"another key", ledger.NewKeys(pubA), ledger.KeyRanges{idB: 1}, "key " + idB + " is held to a range, but is not among the keys given (" + idA + ")"},
	} {
		rep, err := ledger.Verify(t.Context(), l.db.Pool, ledger.VerifyOptions{Keys: tt.keys, KeyUntil: tt.keyUntil})
		var m *ledger.Mismatch
		if err == nil || errors.As(err, &m) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("verify with %s and a range: %v; want an error saying %q", tt.name, err, tt.want)
		}
		if rep.Events != 0 || rep.Checkpoints != 0 {
			t.Errorf("verify with %s and a range read %d events and %d checkpoints; want it refused first", tt.name, rep.Events, rep.Checkpoints)
		}
	}
	if _, err := l.verify(t, ledger.VerifyOptions{Keys: ledger.NewKeys(pubA, pubB), KeyUntil: ledger.KeyRanges{idB: 1}}); err != nil {
		t.Errorf("verify with A and B, B held to checkpoint 1: %v", err)
	}
}

// CheckWitnessed holds a checkpoint read from outside the log (a bundle's) to the checkpoints
// kept from before: it must be one of them by seq, with the same root, and the same tree size
// and log id when those are kept; otherwise it is a witness mismatch naming its seq and what
// differs, the witnessed seqs in runs (a checkpoint file holds thousands). With nothing
// witnessed it holds nothing.
func TestCheckWitnessed(t *testing.T) {
	logID := uuid.New()
	kept := ledger.Checkpoint{LogID: logID, Seq: 2, TreeSize: 9, Root: ledger.Hash{0xaa}}
	noted := ledger.Checkpoint{Seq: 2, Root: ledger.Hash{0xaa}} // --expect 2:aa00…: seq and root only
	other := ledger.Checkpoint{Seq: 7, Root: ledger.Hash{0x77}}
	with := func(change func(*ledger.Checkpoint)) *ledger.Checkpoint {
		cp := kept
		change(&cp)
		return &cp
	}
	same := func(*ledger.Checkpoint) {}
	// seqs and odd are the witnessed checkpoints of a checkpoint file: every seq from first to
	// last, or every other one.
	every := func(first, last, step int64) []ledger.Checkpoint {
		var cps []ledger.Checkpoint
		for seq := first; seq <= last; seq += step {
			cps = append(cps, ledger.Checkpoint{Seq: seq, Root: ledger.Hash{byte(seq)}})
		}
		return cps
	}
	seqs := func(first, last int64) []ledger.Checkpoint { return every(first, last, 1) }
	odd := func(first, last int64) []ledger.Checkpoint { return every(first, last, 2) }
	for _, tt := range []struct {
		name      string
		cp        *ledger.Checkpoint
		witnessed []ledger.Checkpoint
		want      string // "" for accepted
	}{
		{"nothing witnessed", with(func(c *ledger.Checkpoint) { c.Root = ledger.Hash{1} }), nil, ""},
		{"the kept one", with(same), []ledger.Checkpoint{kept}, ""},
		{"the noted one", with(same), []ledger.Checkpoint{other, noted}, ""},
		{"the noted one, another tree size", with(func(c *ledger.Checkpoint) { c.TreeSize = 1 }), []ledger.Checkpoint{noted}, ""},
		{"another root", with(func(c *ledger.Checkpoint) { c.Root = ledger.Hash{0xbb} }), []ledger.Checkpoint{noted},
			fmt.Sprintf("checkpoint 2: witness: its root bb%062x is not the witnessed aa%062x", 0, 0)},
		{"another root than one of two", with(same), []ledger.Checkpoint{noted, {Seq: 2, Root: ledger.Hash{0xcc}}},
			fmt.Sprintf("checkpoint 2: witness: its root aa%062x is not the witnessed cc%062x", 0, 0)},
		{"another tree size", with(func(c *ledger.Checkpoint) { c.TreeSize = 1 }), []ledger.Checkpoint{kept},
			"checkpoint 2: witness: its tree size 1 is not the witnessed 9"},
		{"another log", with(func(c *ledger.Checkpoint) { c.LogID = uuid.Nil }), []ledger.Checkpoint{kept},
			"checkpoint 2: witness: it is of log " + uuid.Nil.String() + ", not the witnessed " + logID.String()},
		{"another seq", with(func(c *ledger.Checkpoint) { c.Seq = 3 }), []ledger.Checkpoint{other, noted, other},
			"checkpoint 3: witness: its seq is not a witnessed one (witnessed: 2, 7)"},
		{"another seq than a whole file's", with(func(c *ledger.Checkpoint) { c.Seq = 5000 }), seqs(1, 4000),
			"checkpoint 5000: witness: its seq is not a witnessed one (witnessed: 1–4000)"},
		{"another seq than a file with gaps", with(func(c *ledger.Checkpoint) { c.Seq = 4 }), append(append(seqs(1, 3), seqs(5, 6)...), seqs(8, 40)...),
			"checkpoint 4: witness: its seq is not a witnessed one (witnessed: 1–3, 5, 6, 8–40)"},
		{"another seq than a file with many gaps", with(func(c *ledger.Checkpoint) { c.Seq = 2 }), odd(1, 4001),
			"checkpoint 2: witness: its seq is not a witnessed one (witnessed: 1, 3, 5, 7, 9, …, 3993, 3995, 3997, 3999, 4001: 2001 checkpoints)"},
	} {
		err := ledger.CheckWitnessed(tt.cp, tt.witnessed)
		var m *ledger.Mismatch
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v; want it accepted", tt.name, err)
		case tt.want != "" && (!errors.As(err, &m) || m.Field != "witness" || err.Error() != tt.want):
			t.Errorf("%s: %v; want a mismatch %q", tt.name, err, tt.want)
		}
	}
}
