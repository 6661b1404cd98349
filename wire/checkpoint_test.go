package wire_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// proofOfOne returns the proof of the only event of a one-event log, signed with key.
func proofOfOne(t *testing.T, key ed25519.PrivateKey) *ledger.Proof {
	t.Helper()
	e := ledger.ChainedEvent{ID: uuid.New(), Stream: uuid.New(), Version: 1, Type: "NotificationQueued",
		Occurred: time.UnixMicro(1796457600123456).UTC(), Data: []byte(`{"a": 1}`), Metadata: []byte(`{}`)}
	p := &ledger.Proof{Event: e, Position: 1, TransactionID: 7, Hash: ledger.EventHash(ledger.Genesis, &e)}
	var tree ledger.Tree
	tree.Append(ledger.LeafHash(p.TransactionID, p.Position, p.Hash))
	p.Checkpoint = ledger.Checkpoint{LogID: uuid.New(), Seq: 1, TreeSize: 1, LastTransactionID: 7, LastPosition: 1,
		Root: tree.Root(), Frontier: tree.Frontier(), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	p.Checkpoint.Sign(key)
	if err := p.Verify(ledger.NewKeys(key.Public().(ed25519.PublicKey))); err != nil {
		t.Fatalf("the fixture does not verify: %v", err)
	}
	return p
}

// ReadProofs tells a bundle, an export and a notification's proof apart, and reads each back to
// proofs that verify; a bundle carries no frontier, and refuses one.
func TestReadProofsReadsEveryShape(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	p := proofOfOne(t, key)
	stream := uuid.UUID(p.Event.Stream).String()
	bundle := wire.NewProofBundle(p)
	for _, tc := range []struct {
		shape  string
		value  any
		events int
	}{
		{"bundle", bundle, 0},
		{"export", wire.StreamExport{StreamID: stream, Events: []wire.ProvenEvent{bundle.Event}, Proofs: []wire.ProofBundle{bundle}}, 1},
		{"notification proof", wire.NewNotificationProof(stream, []*ledger.Proof{p}, 0), 1},
	} {
		b, _ := json.Marshal(tc.value)
		if strings.Contains(string(b), "frontier") {
			t.Errorf("%s carries a frontier: %s", tc.shape, b)
		}
		got, err := wire.ReadProofs(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", tc.shape, err)
		}
		if got.Shape != tc.shape || len(got.Proofs) != 1 || len(got.Events) != tc.events {
			t.Errorf("%s read as %s with %d proofs, %d events", tc.shape, got.Shape, len(got.Proofs), len(got.Events))
		}
		if err := got.Proofs[0].Verify(ledger.NewKeys(pub)); err != nil {
			t.Errorf("%s: the proof read back does not verify: %v", tc.shape, err)
		}
	}

	var withFrontier map[string]any
	b, _ := json.Marshal(bundle)
	_ = json.Unmarshal(b, &withFrontier)
	withFrontier["checkpoint"].(map[string]any)["frontier"] = []string{strings.Repeat("ab", ledger.HashSize)}
	b, _ = json.Marshal(withFrontier)
	if _, err := wire.ReadProofs(strings.NewReader(string(b))); err == nil || !strings.Contains(err.Error(), "frontier") {
		t.Errorf("a bundle with a frontier: %v, want the frontier refused", err)
	}
	if _, err := wire.ReadProofs(strings.NewReader(`{"proofs": []}`)); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("a file of no known shape: %v, want it refused", err)
	}
	// The checkpoint list keeps its frontier.
	b, _ = json.Marshal(wire.NewCheckpoint(p.Checkpoint))
	if !strings.Contains(string(b), `"frontier":["`) || !strings.Contains(string(b), `"log_id":"`) {
		t.Errorf("a listed checkpoint: %s, want its fields and its frontier", b)
	}
}

// A verification with no signature checked says so with an empty list of signers, not null:
// a reader iterates it without a nil check.
func TestVerificationSignersIsAnArray(t *testing.T) {
	b, err := json.Marshal(wire.NewVerification(ledger.VerifyReport{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"signers":[]`) {
		t.Errorf("verification without signatures: %s; want \"signers\":[]", b)
	}
}

// The ranges a verification held the keys to are listed in the order they end, and an empty
// list, not null, when none was given.
func TestVerificationKeyUntil(t *testing.T) {
	b, err := json.Marshal(wire.NewVerification(ledger.VerifyReport{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"key_until":[]`) {
		t.Errorf("verification without ranges: %s; want \"key_until\":[]", b)
	}
	v := wire.NewVerification(ledger.VerifyReport{KeyUntil: ledger.KeyRanges{"bb": 52, "cc": 40, "aa": 52}}, nil)
	want := []wire.KeyRange{{KeyID: "cc", UntilCheckpoint: 40}, {KeyID: "aa", UntilCheckpoint: 52}, {KeyID: "bb", UntilCheckpoint: 52}}
	if diff := cmp.Diff(want, v.KeyUntil); diff != "" {
		t.Errorf("key_until (-want +got):\n%s", diff)
	}
}
