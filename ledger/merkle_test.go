package ledger_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/herald-notify/herald/ledger"
)

// naiveRoot is RFC 6962's MTH, computed recursively from all the leaves (LeafHash).
func naiveRoot(leaves []ledger.Hash) ledger.Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return ledger.NodeHash(naiveRoot(leaves[:k]), naiveRoot(leaves[k:]))
}

func eventHashN(i int) ledger.Hash { return sha256.Sum256([]byte{byte(i), byte(i >> 8)}) }

// leafN is the leaf of a made-up event i: transaction 100+i/3, position i, hash eventHashN(i).
func leafN(i int) ledger.Hash { return ledger.LeafHash(uint64(100+i/3), int64(i), eventHashN(i)) }

// The frontier's root is RFC 6962's root of the same leaves, at every size, and a tree rebuilt
// from a frontier goes on exactly as the one it was taken from.
func TestTreeRootIsTheRecursiveRoot(t *testing.T) {
	tree := &ledger.Tree{}
	var leaves []ledger.Hash
	for i := range 300 {
		if got, want := tree.Root(), naiveRoot(leaves); got != want {
			t.Fatalf("size %d: root %x, want %x", i, got, want)
		}
		if i%37 == 0 {
			again, err := ledger.NewTreeFromFrontier(tree.Size(), tree.Frontier())
			if err != nil {
				t.Fatalf("size %d: %v", i, err)
			}
			tree = again
		}
		leaves = append(leaves, leafN(i))
		tree.Append(leaves[i])
	}
	if _, err := ledger.NewTreeFromFrontier(5, make([]byte, 32)); err == nil {
		t.Error("a frontier of one hash for a tree of 5 leaves (two perfect subtrees) was accepted")
	}
}

// Known values: the empty tree's root is SHA-256 of nothing (RFC 6962 2.1); an event's leaf is
// H(0x00 || xid (8 bytes) || position (8 bytes) || hash), big-endian; a tree of one leaf has it
// as its root; of three, H(0x01 || H(0x01 || l0 || l1) || l2).
func TestTreeKnownVectors(t *testing.T) {
	tree := &ledger.Tree{}
	if root := tree.Root(); hex.EncodeToString(root[:]) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty root %x", root)
	}
	var zero ledger.Hash
	leafOf := func(xid uint64, pos int64, h ledger.Hash) []byte {
		b := []byte{0}
		b = binary.BigEndian.AppendUint64(b, xid)
		b = binary.BigEndian.AppendUint64(b, uint64(pos))
		s := sha256.Sum256(append(b, h[:]...))
		return s[:]
	}
	if got := ledger.LeafHash(7, 9, zero); hex.EncodeToString(got[:]) != hex.EncodeToString(leafOf(7, 9, zero)) {
		t.Errorf("leaf of (7, 9, zero): %x, want %x", got, leafOf(7, 9, zero))
	}
	if ledger.LeafHash(7, 9, zero) == ledger.LeafHash(7, 10, zero) || ledger.LeafHash(7, 9, zero) == ledger.LeafHash(8, 9, zero) {
		t.Error("the leaf does not depend on the event's place in the log")
	}
	tree.Append(ledger.LeafHash(7, 9, zero))
	if tree.Root() != ledger.LeafHash(7, 9, zero) {
		t.Errorf("one leaf: %x, want the leaf", tree.Root())
	}
	tree = &ledger.Tree{}
	for i := 1; i <= 3; i++ {
		tree.Append(leafN(i))
	}
	leaf := func(i int) []byte { l := leafN(i); return l[:] }
	node := func(l, r []byte) []byte { s := sha256.Sum256(append(append([]byte{1}, l...), r...)); return s[:] }
	want := node(node(leaf(1), leaf(2)), leaf(3))
	if got := tree.Root(); hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
		t.Errorf("three leaves: %x, want %x", got, want)
	}
	if n := len(tree.Frontier()); n != 2*ledger.HashSize {
		t.Errorf("a tree of 3 leaves keeps %d bytes of frontier, want two hashes", n)
	}
}

// naivePath is RFC 6962's PATH(m, D[n]), computed recursively from all the leaves.
func naivePath(m int, leaves []ledger.Hash) []ledger.Hash {
	if len(leaves) <= 1 {
		return nil
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	if m < k {
		return append(naivePath(m, leaves[:k]), naiveRoot(leaves[k:]))
	}
	return append(naivePath(m-k, leaves[k:]), naiveRoot(leaves[:k]))
}

// Every leaf of every tree up to 70 leaves has a proof, the one RFC 6962 defines, that leads to
// the root; a proof for another leaf, index or size, or with a hash changed, does not.
func TestInclusionProofs(t *testing.T) {
	var leaves []ledger.Hash
	for n := 1; n <= 70; n++ {
		leaves = append(leaves, leafN(n))
		root := naiveRoot(leaves)
		for m := range n {
			p, err := ledger.NewInclusionProver(uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range leaves {
				p.Add(l)
			}
			leaf, path, err := p.Proof()
			if err != nil {
				t.Fatal(err)
			}
			if leaf != leaves[m] {
				t.Fatalf("n=%d m=%d: leaf %x, want %x", n, m, leaf, leaves[m])
			}
			if diff := cmp.Diff(naivePath(m, leaves), path, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("n=%d m=%d: path differs from RFC 6962's (-want +got):\n%s", n, m, diff)
			}
			if err := ledger.VerifyInclusion(leaf, uint64(m), uint64(n), path, root); err != nil {
				t.Fatalf("n=%d m=%d: %v", n, m, err)
			}
			if n > 1 {
				if ledger.VerifyInclusion(leaves[(m+1)%n], uint64(m), uint64(n), path, root) == nil {
					t.Errorf("n=%d m=%d: another leaf's hash verified", n, m)
				}
				if ledger.VerifyInclusion(leaf, uint64((m+1)%n), uint64(n), path, root) == nil {
					t.Errorf("n=%d m=%d: another index verified", n, m)
				}
				bad := append([]ledger.Hash(nil), path...)
				bad[len(bad)/2][0] ^= 1
				if ledger.VerifyInclusion(leaf, uint64(m), uint64(n), bad, root) == nil {
					t.Errorf("n=%d m=%d: a changed path verified", n, m)
				}
			}
			if ledger.VerifyInclusion(leaf, uint64(m), uint64(n+1), path, naiveRoot(append(leaves[:n:n], leafN(999)))) == nil && n > 1 {
				t.Errorf("n=%d m=%d: verified in a bigger tree", n, m)
			}
		}
	}
}
