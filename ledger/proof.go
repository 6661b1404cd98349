package ledger

import (
	"errors"
	"fmt"
	"math/bits"
)

// An inclusion proof shows that a leaf is in a tree of a given root without the other leaves:
// the roots of the subtrees beside the leaf's path to the root, from the leaf up (RFC 9162,
// 2.1.3).

// proofRanges returns the leaf ranges [lo, hi) whose subtree roots make the inclusion proof of
// leaf m in a tree of size n, from the leaf up: disjoint, contiguous, covering every leaf but m.
func proofRanges(m, n uint64) [][2]uint64 {
	var out [][2]uint64
	var walk func(lo, hi uint64)
	walk = func(lo, hi uint64) {
		if hi-lo <= 1 {
			return
		}
		k := uint64(1) << (bits.Len64(hi-lo-1) - 1) // the largest power of two below hi-lo
		if m < lo+k {
			walk(lo, lo+k)
			out = append(out, [2]uint64{lo + k, hi})
		} else {
			walk(lo+k, hi)
			out = append(out, [2]uint64{lo, lo + k})
		}
	}
	walk(0, n)
	return out
}

// InclusionProver computes the inclusion proof of leaf Index in a tree of Size leaves, given the
// tree's leaves one after the other (Add), in O(log n) memory: one frontier per subtree of the
// proof.
type InclusionProver struct {
	index, size uint64
	ranges      [][2]uint64
	trees       []*Tree
	next        uint64
	leaf        Hash
}

// NewInclusionProver returns a prover of leaf index in a tree of size leaves.
func NewInclusionProver(index, size uint64) (*InclusionProver, error) {
	if index >= size {
		return nil, fmt.Errorf("leaf %d is not in a tree of %d leaves", index, size)
	}
	p := &InclusionProver{index: index, size: size, ranges: proofRanges(index, size)}
	p.trees = make([]*Tree, len(p.ranges))
	for i := range p.trees {
		p.trees[i] = &Tree{}
	}
	return p, nil
}

// Add gives the prover the next leaf (LeafHash).
func (p *InclusionProver) Add(leaf Hash) {
	i := p.next
	p.next++
	if i == p.index {
		p.leaf = leaf
		return
	}
	for j, r := range p.ranges {
		if i >= r[0] && i < r[1] {
			p.trees[j].Append(leaf)
			return
		}
	}
}

// Proof returns the proof, once every leaf has been added: the leaf, and the path.
func (p *InclusionProver) Proof() (Hash, []Hash, error) {
	if p.next != p.size {
		return Hash{}, nil, fmt.Errorf("the prover was given %d leaves of %d", p.next, p.size)
	}
	path := make([]Hash, len(p.trees))
	for i, t := range p.trees {
		path[i] = t.Root()
	}
	return p.leaf, path, nil
}

// VerifyInclusion checks that leaf (LeafHash) is leaf index of the tree of size leaves whose
// root is root, by path (RFC 9162, 2.1.3.2).
func VerifyInclusion(leaf Hash, index, size uint64, path []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("leaf %d is not in a tree of %d leaves", index, size)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return errors.New("the proof is longer than the tree is deep")
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return errors.New("the proof is shorter than the tree is deep")
	}
	if r != root {
		return errors.New("the proof does not lead to the root")
	}
	return nil
}
