package ledger

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A seqSet holds the same runs as the sorted seqs it was given, however they came: in order, in
// reverse, shuffled, in order with a few out of place, repeated — past many merges of the
// seqs that waited, and read (and so merged) midway.
func TestSeqSetHoldsTheRunsOfItsSeqs(t *testing.T) {
	const n = 20_000
	rng := rand.New(rand.NewPCG(1, 2))
	var kept []int64
	for s := int64(1); len(kept) < n; s++ {
		if rng.IntN(10) != 0 { // a gap one time in ten
			kept = append(kept, s)
		}
	}
	reversed := slices.Clone(kept)
	slices.Reverse(reversed)
	orders := map[string][]int64{"in order": kept, "reversed": reversed}
	shuffled := append(slices.Clone(kept), kept[:n/2]...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	orders["shuffled, half twice"] = shuffled
	nearly := slices.Clone(kept)
	for range n / 50 {
		i, j := rng.IntN(n), rng.IntN(n)
		nearly[i], nearly[j] = nearly[j], nearly[i]
	}
	orders["in order, a few out of place"] = nearly
	want := runsOf(kept)
	for name, seqs := range orders {
		var s seqSet
		for i, seq := range seqs {
			s.add(seq)
			if i == len(seqs)/3 {
				_ = s.String() // read midway: merged, and added to after
			}
		}
		if got := s.count(); got != n {
			t.Errorf("%s: count %d, want %d", name, got, n)
		}
		if diff := cmp.Diff(want, s.runs, cmp.AllowUnexported(seqRun{})); diff != "" {
			t.Errorf("%s: runs (-want +got):\n%s", name, diff)
		}
		if len(s.pending) > max(minPending, len(s.runs)) {
			t.Errorf("%s: %d seqs pending for %d runs", name, len(s.pending), len(s.runs))
		}
	}
}

// runsOf returns the runs of sorted, distinct seqs.
func runsOf(seqs []int64) []seqRun {
	var runs []seqRun
	for _, s := range seqs {
		if n := len(runs); n > 0 && runs[n-1].last+1 == s {
			runs[n-1].last = s
			continue
		}
		runs = append(runs, seqRun{s, s})
	}
	return runs
}
