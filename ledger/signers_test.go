package ledger

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
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

// A checkpoint's key_id is whatever its writer put there (a witness's line, a bundle): the error
// for a checkpoint signed by a key not given names its key id when it is one, and otherwise says
// only that it is not one, never repeating it — not a megabyte of it, not control characters,
// not a private key pasted in its place.
func TestVerifySignatureDoesNotRepeatAKeyIDThatIsNone(t *testing.T) {
	pubA, _, _ := ed25519.GenerateKey(nil)
	pubB, keyB, _ := ed25519.GenerateKey(nil)
	pubC, _, _ := ed25519.GenerateKey(nil)
	idB := KeyID(pubB)
	for name, keys := range map[string]Keys{"one key": NewKeys(pubA), "two keys": NewKeys(pubA, pubC)} {
		for _, tt := range []struct{ keyID, want string }{
			{idB, "signed by key " + idB + ", not by "},
			{strings.ToUpper(idB), "signed by key " + strings.ToUpper(idB) + ", not by "},
			{base64.StdEncoding.EncodeToString(keyB), "signed by a key_id that is no key id (88 bytes, not 16 hex digits), not by "},
			{strings.Repeat("x", 1<<20), "signed by a key_id that is no key id (1048576 bytes, not 16 hex digits), not by "},
			{"0123456789abcde\x1b", "signed by a key_id that is no key id (16 bytes, not 16 hex digits), not by "},
			{"", "signed by a key_id that is no key id (0 bytes, not 16 hex digits), not by "},
		} {
			cp := Checkpoint{Seq: 1, TreeSize: 1}
			cp.Sign(keyB)
			cp.KeyID = tt.keyID
			err := cp.VerifySignature(keys)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || len(err.Error()) > 200 {
				t.Errorf("%s, key_id of %d bytes: %.300v; want it to begin %q, and short", name, len(tt.keyID), err, tt.want)
			}
		}
	}
}
