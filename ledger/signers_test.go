package ledger

import (
	"crypto/ed25519"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Each run of consecutive checkpoints signed by one key is one range: a key that signs again
// after another (A, B, A) starts a range of its own, so an old key signing past a rotation shows.
func TestSignersRangesFollowTheKeys(t *testing.T) {
	var r VerifyReport
	for i, id := range []string{"a", "a", "b", "a", "a"} {
		r.addSigner(&Checkpoint{Seq: int64(i + 3), KeyID: id})
	}
	want := []SignedRange{{"a", 3, 4}, {"b", 5, 5}, {"a", 6, 7}}
	if diff := cmp.Diff(want, r.Signers); diff != "" {
		t.Errorf("signers (-want +got):\n%s", diff)
	}
}

// A key filed under another key's id does not lend that key its signatures: the checkpoint is
// checked with the key its id names, and that key's id must be the one named.
func TestVerifySignatureRefusesAMislabelledKey(t *testing.T) {
	pubA, keyA, _ := ed25519.GenerateKey(nil)
	pubB, _, _ := ed25519.GenerateKey(nil)
	cp := Checkpoint{Seq: 1, TreeSize: 1}
	cp.Sign(keyA)
	if err := cp.VerifySignature(NewKeys(pubA)); err != nil {
		t.Fatalf("signed with A, checked with A: %v", err)
	}
	// B's id names A's key: A's signature must not verify as B's.
	cp.KeyID = KeyID(pubB)
	if err := cp.VerifySignature(Keys{KeyID(pubB): pubA}); err == nil {
		t.Error("a checkpoint naming key B verified with A's key filed under B's id")
	}
}
