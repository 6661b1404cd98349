package ledger_test

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/ledger"
)

// A witness index made for a bundle's seqs holds a checkpoint to the copies of its seq and names
// the seqs it saw in runs, whatever order the copies come in (a receiver's copy may hold them
// out of order, twice): the same runs as in order. A seq it was not made for is an error, not a
// verdict.
func TestWitnessIndex(t *testing.T) {
	var seqs []int64
	for _, run := range [][2]int64{{1, 3}, {5, 6}, {8, 40}, {42, 42}, {44, 45}, {47, 60}} {
		for s := run[0]; s <= run[1]; s++ {
			seqs = append(seqs, s)
		}
	}
	const want = "1–3, 5, 6, 8–40, 42, 44, 45, 47–60"
	root := func(seq int64) ledger.Hash { return ledger.Hash{byte(seq)} }
	for _, order := range []string{"in order", "shuffled, twice over"} {
		in := append([]int64(nil), seqs...)
		if order != "in order" {
			in = append(in, seqs...)
			rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		}
		w := ledger.NewWitnessIndex(7, 9)
		for _, s := range in {
			w.Add(ledger.Checkpoint{Seq: s, Root: root(s), Frontier: make([]byte, 64)})
		}
		if w.Len() != int64(len(in)) {
			t.Errorf("%s: Len %d, want %d", order, w.Len(), len(in))
		}
		if err := w.Check(&ledger.Checkpoint{Seq: 9, Root: root(9)}); err != nil {
			t.Errorf("%s: checkpoint 9 as kept: %v", order, err)
		}
		err := w.Check(&ledger.Checkpoint{Seq: 9, Root: root(10)})
		var m *ledger.Mismatch
		if !errors.As(err, &m) || m.Field != "witness" || !strings.Contains(err.Error(), "its root 0a") {
			t.Errorf("%s: checkpoint 9 with another root: %v; want its root named", order, err)
		}
		err = w.Check(&ledger.Checkpoint{Seq: 7, Root: root(7)})
		if !errors.As(err, &m) || err.Error() != "checkpoint 7: witness: its seq is not a witnessed one (witnessed: "+want+")" {
			t.Errorf("%s: checkpoint 7: %v; want the runs %s", order, err, want)
		}
		if err := w.Check(&ledger.Checkpoint{Seq: 8, Root: root(8)}); err == nil || errors.As(err, &m) {
			t.Errorf("%s: checkpoint 8, which the index was not made for: %v; want an error that is no mismatch", order, err)
		}
	}
}

// A witness index made for a few seqs keeps, of a file that repeats them (a receiver's copy,
// delivered at least once), one copy of each: its memory does not grow with the lines.
func TestWitnessIndexKeepsOneCopyOfARepeatedLine(t *testing.T) {
	const n = 200_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := ledger.NewWitnessIndex(1, 2)
	for i := range n {
		seq := int64(i%3) + 1
		w.Add(ledger.Checkpoint{Seq: seq, TreeSize: seq, Root: ledger.Hash{byte(seq)}, KeyID: "0123456789abcdef", Signature: make([]byte, 64)})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Errorf("the index grew the heap by %d KiB for %d lines of 3 checkpoints; want under 1 MiB", grown>>10, n)
	}
	if err := w.Check(&ledger.Checkpoint{Seq: 2, TreeSize: 2, Root: ledger.Hash{2}}); err != nil || w.Len() != n {
		t.Errorf("checkpoint 2 of %d lines: %v, Len %d", w.Len(), err, w.Len())
	}
	runtime.KeepAlive(w)
}

// Verify reads the witnessed checkpoints once, a batch at a time, before the log: copies past
// the first batches are all held to the database (a bad one in the third is named), and an error
// they yield is returned as it is, before any event is read.
func TestVerifyReadsTheWitnessInBatches(t *testing.T) {
	l := newSealedLog(t)
	cps, err := ledger.List(t.Context(), l.db.Pool, 0)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints: %v, %v", cps, err)
	}
	const n = 2500 // past two batches
	copies := func(last ledger.Checkpoint, fail error) func(yield func(ledger.Checkpoint, error) bool) {
		return func(yield func(ledger.Checkpoint, error) bool) {
			for range n - 1 {
				if !yield(cps[0], nil) {
					return
				}
			}
			if fail != nil {
				yield(ledger.Checkpoint{}, fail)
				return
			}
			yield(last, nil)
		}
	}
	rep, err := l.verify(t, ledger.VerifyOptions{Witnessed: copies(cps[0], nil)})
	if err != nil || rep.Witnessed != n || rep.Checkpoints != 1 {
		t.Errorf("verify with %d copies of the checkpoint: %+v, %v; want them all witnessed", n, rep, err)
	}
	other := cps[0]
	other.Root[0] ^= 1
	rep, err = l.verify(t, ledger.VerifyOptions{Witnessed: copies(other, nil)})
	var m *ledger.Mismatch
	if !errors.As(err, &m) || m.Field != "witness" || m.Checkpoint != 1 || rep.Witnessed != n-1 || rep.Events != 0 {
		t.Errorf("verify with another root last: %+v, %v; want checkpoint 1's root named after %d witnessed, before the log", rep, err, n-1)
	}
	bad := errors.New("line 2500: not a checkpoint")
	rep, err = l.verify(t, ledger.VerifyOptions{Witnessed: copies(cps[0], bad)})
	if !errors.Is(err, bad) || errors.As(err, &m) || rep.Events != 0 {
		t.Errorf("verify with a witness that fails: %+v, %v; want its error, before the log", rep, err)
	}
}

// A witness index takes a file's seqs in any order at the same cost: a receiver's copy in
// reverse, every seq a run of its own (the worst case for runs), is read in well under its
// deadline — inserting each seq into the runs in place took time quadratic in the lines, some
// 14 s for these and four times that for twice as many — and the index names the same runs as
// for the file in order.
func TestWitnessIndexTakesAReversedFileFast(t *testing.T) {
	const n = 200_000 // seqs 2, 4, …, 400,000: n runs
	const deadline = 3 * time.Second
	want := "checkpoint 1: witness: its seq is not a witnessed one (witnessed: 2, 4, 6, 8, 10, …, 399992, 399994, 399996, 399998, 400000: 200000 checkpoints)"
	for _, order := range []string{"in order", "reversed", "shuffled"} {
		seqs := make([]int64, n)
		for i := range seqs {
			seqs[i] = 2 * int64(i+1)
		}
		switch order {
		case "reversed":
			slices.Reverse(seqs)
		case "shuffled":
			rand.Shuffle(n, func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
		}
		w := ledger.NewWitnessIndex(1)
		started := time.Now()
		for i, seq := range seqs {
			w.Add(ledger.Checkpoint{Seq: seq, Root: ledger.Hash{1}})
			if i%1024 == 0 && time.Since(started) > deadline {
				t.Fatalf("%s: %d of %d seqs added in %s: past the deadline", order, i, n, time.Since(started).Round(time.Millisecond))
			}
		}
		err := w.Check(&ledger.Checkpoint{Seq: 1, Root: ledger.Hash{1}})
		t.Logf("%s: %d seqs, each a run, added and named in %s", order, n, time.Since(started).Round(time.Millisecond))
		if err == nil || err.Error() != want {
			t.Errorf("%s: checkpoint 1: %v\nwant %s", order, err, want)
		}
	}
}
