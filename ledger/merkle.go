package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The Merkle tree over the log follows RFC 6962 (and 9162): a leaf is H(0x00 || leaf data), a
// node H(0x01 || left || right), and a tree of n leaves splits after the largest power of two
// smaller than n. The root of an empty tree is H(""). An event's leaf data is its place in the
// log — transaction id and global position, 8 bytes each, big-endian — and its chain hash, so
// that renumbering or reordering the log changes the root even with every chain intact.

// LeafHash is the tree's leaf of the event at (xid, position) whose chain hash is eventHash.
func LeafHash(xid uint64, position int64, eventHash Hash) Hash {
	var b [1 + 8 + 8 + HashSize]byte
	b[0] = 0x00
	binary.BigEndian.PutUint64(b[1:], xid)
	binary.BigEndian.PutUint64(b[9:], uint64(position))
	copy(b[17:], eventHash[:])
	return sha256.Sum256(b[:])
}

// NodeHash is the tree's node over left and right.
func NodeHash(left, right Hash) Hash {
	var b [1 + 2*HashSize]byte
	b[0] = 0x01
	copy(b[1:], left[:])
	copy(b[1+HashSize:], right[:])
	return sha256.Sum256(b[:])
}

// Tree is a Merkle tree kept as its compact frontier: the roots of the perfect subtrees its
// leaves fill, one for each bit set in its size, the largest (leftmost) first. Appending a leaf
// and computing the root each take O(log n) time, and the tree takes O(log n) memory however
// many leaves it has.
type Tree struct {
	size     uint64
	frontier []Hash
}

// NewTreeFromFrontier returns the tree of size leaves whose frontier is frontier (as Frontier
// returned it).
func NewTreeFromFrontier(size uint64, frontier []byte) (*Tree, error) {
	n := bits.OnesCount64(size)
	if len(frontier) != n*HashSize {
		return nil, fmt.Errorf("a tree of %d leaves has a frontier of %d hashes, not %d bytes", size, n, len(frontier))
	}
	t := &Tree{size: size, frontier: make([]Hash, n)}
	for i := range t.frontier {
		copy(t.frontier[i][:], frontier[i*HashSize:])
	}
	return t, nil
}

// Size is how many leaves the tree has.
func (t *Tree) Size() uint64 { return t.size }

// Append adds a leaf, as LeafHash returned it.
func (t *Tree) Append(leaf Hash) { t.appendReporting(leaf, nil) }

// appendReporting is Append, calling completed, when not nil, with each perfect subtree the
// leaf completes above the leaves: level l, index i covers leaves [i*2^l, (i+1)*2^l).
func (t *Tree) appendReporting(leaf Hash, completed func(level uint, index uint64, root Hash)) {
	h := leaf
	// Each trailing one bit of the old size is a perfect subtree of the new leaf's size that
	// merges with it.
	level := uint(0)
	for s := t.size; s&1 == 1; s >>= 1 {
		last := len(t.frontier) - 1
		h = NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
		level++
		if completed != nil {
			completed(level, t.size>>level, h)
		}
	}
	t.frontier = append(t.frontier, h)
	t.size++
}

// Root is the tree's root hash.
func (t *Tree) Root() Hash {
	if len(t.frontier) == 0 {
		return sha256.Sum256(nil)
	}
	root := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		root = NodeHash(t.frontier[i], root)
	}
	return root
}

// Frontier is the tree's frontier, its hashes one after the other: what NewTreeFromFrontier
// takes back.
func (t *Tree) Frontier() []byte {
	b := make([]byte, 0, len(t.frontier)*HashSize)
	for _, h := range t.frontier {
		b = append(b, h[:]...)
	}
	return b
}
