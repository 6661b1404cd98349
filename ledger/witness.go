package ledger

import (
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Kept returns cps, checkpoints kept outside the database (seqs and roots noted by hand, say),
// as VerifyOptions.Witnessed reads them.
func Kept(cps ...Checkpoint) iter.Seq2[Checkpoint, error] {
	return func(yield func(Checkpoint, error) bool) {
		for _, cp := range cps {
			if !yield(cp, nil) {
				return
			}
		}
	}
}

// WitnessIndex keeps, of checkpoints kept outside the log and read one at a time (a checkpoint
// file, line by line), what holding a few checkpoints to them needs: the copies of those
// checkpoints' seqs, and which seqs were kept, as runs of consecutive seqs. Its memory grows with
// the seqs it is made for and the gaps between the kept seqs, not with the copies read: a
// sealer's checkpoint file, one line every ten seconds for years, is one run.
type WitnessIndex struct {
	want   map[int64]bool // nil: every copy is kept
	copies map[int64][]Checkpoint
	seqs   seqSet
	n      int64
}

// NewWitnessIndex returns an index that keeps the copies of the checkpoints of seqs, or every
// copy when none is given.
func NewWitnessIndex(seqs ...int64) *WitnessIndex {
	w := &WitnessIndex{copies: make(map[int64][]Checkpoint)}
	if len(seqs) > 0 {
		w.want = make(map[int64]bool, len(seqs))
		for _, seq := range seqs {
			w.want[seq] = true
		}
	}
	return w
}

// Add takes a kept copy of a checkpoint. A copy the same as one kept (a receiver's, delivered at
// least once, may repeat a line) is counted and not kept again; nor is its frontier, which no
// check reads.
func (w *WitnessIndex) Add(cp Checkpoint) {
	w.n++
	w.seqs.add(cp.Seq)
	if w.want != nil && !w.want[cp.Seq] {
		return
	}
	for _, k := range w.copies[cp.Seq] {
		if k.Root == cp.Root && k.TreeSize == cp.TreeSize && k.LogID == cp.LogID {
			return
		}
	}
	w.copies[cp.Seq] = append(w.copies[cp.Seq], Checkpoint{LogID: cp.LogID, Seq: cp.Seq, TreeSize: cp.TreeSize, Root: cp.Root})
}

// Len is how many copies were added.
func (w *WitnessIndex) Len() int64 { return w.n }

// Check refuses cp unless it is one of the kept copies (the sealer's checkpoint file, a
// checkpoint.signed receiver's copy, a seq and root an auditor noted): one of cp's seq, with its
// root, and its tree size and log id when they are not zero, and cp agrees with every copy of its
// seq. A *Mismatch of field witness names cp's seq and what differs. With no copy at all there
// is nothing to hold cp to, and it returns nil. cp's seq must be one the index was made for.
//
// This is what pins a checkpoint read from a proof bundle, whose seq is whatever its signer
// wrote: after a rotation, a checkpoint the old key signs is worth what that key is worth,
// unless it is one kept from before the rotation.
func (w *WitnessIndex) Check(cp *Checkpoint) error {
	if w.n == 0 {
		return nil
	}
	if w.want != nil && !w.want[cp.Seq] {
		return fmt.Errorf("checkpoint %d: the witness index keeps no copy of its seq", cp.Seq)
	}
	mismatch := func(format string, args ...any) error {
		return &Mismatch{Checkpoint: cp.Seq, Field: "witness", Reason: fmt.Sprintf(format, args...)}
	}
	copies := w.copies[cp.Seq]
	if len(copies) == 0 {
		return mismatch("its seq is not a witnessed one (witnessed: %s)", w.seqs.String())
	}
	for i := range copies {
		k := &copies[i]
		switch {
		case cp.Root != k.Root:
			return mismatch("its root %x is not the witnessed %x", cp.Root[:], k.Root[:])
		case k.TreeSize != 0 && cp.TreeSize != k.TreeSize:
			return mismatch("its tree size %d is not the witnessed %d", cp.TreeSize, k.TreeSize)
		case k.LogID != [16]byte{} && cp.LogID != k.LogID:
			return mismatch("it is of log %s, not the witnessed %s", uuid.UUID(cp.LogID), uuid.UUID(k.LogID))
		}
	}
	return nil
}

// CheckWitnessed is WitnessIndex.Check with every copy of witnessed at hand.
func CheckWitnessed(cp *Checkpoint, witnessed []Checkpoint) error {
	w := NewWitnessIndex(cp.Seq)
	for i := range witnessed {
		w.Add(witnessed[i])
	}
	return w.Check(cp)
}

// seqSet is a set of seqs as sorted runs of consecutive ones. Seqs added in order, as a
// checkpoint file holds them, cost nothing past the run they extend. One added out of order (a
// receiver's copy may hold them so) waits in pending, and the pending ones are sorted and merged
// into the runs at once when there are as many of them as runs (or minPending), and before the
// set is read: each add costs O(log n) amortised however the seqs come, where inserting each
// into the runs in place cost O(n) (O(n²) for a file in reverse). Its memory is the runs, one per
// gap between the seqs, and at most as many pending seqs: it grows with the gaps, not the lines.
type seqSet struct {
	runs    []seqRun
	pending []int64
}

type seqRun struct{ first, last int64 }

// minPending is how many seqs added out of order wait before they are merged, however few runs
// there are: merging is a sort, not worth doing for each.
const minPending = 1024

func (s *seqSet) add(seq int64) {
	if n := len(s.runs); n > 0 && seq >= s.runs[n-1].first {
		r := &s.runs[n-1]
		switch {
		case seq <= r.last:
		case seq == r.last+1:
			r.last = seq
		default:
			s.runs = append(s.runs, seqRun{seq, seq})
		}
		return
	}
	if len(s.runs) == 0 {
		s.runs = append(s.runs, seqRun{seq, seq})
		return
	}
	s.pending = append(s.pending, seq)
	if len(s.pending) >= max(minPending, len(s.runs)) {
		s.merge()
	}
}

// merge sorts the pending seqs into the runs, in one pass over both.
func (s *seqSet) merge() {
	if len(s.pending) == 0 {
		return
	}
	slices.Sort(s.pending)
	runs := make([]seqRun, 0, len(s.runs)+len(s.pending))
	push := func(r seqRun) {
		if n := len(runs); n > 0 && r.first <= runs[n-1].last+1 {
			runs[n-1].last = max(runs[n-1].last, r.last)
			return
		}
		runs = append(runs, r)
	}
	i, j := 0, 0
	for i < len(s.runs) || j < len(s.pending) {
		if j == len(s.pending) || i < len(s.runs) && s.runs[i].first <= s.pending[j] {
			push(s.runs[i])
			i++
		} else {
			push(seqRun{s.pending[j], s.pending[j]})
			j++
		}
	}
	s.runs, s.pending = runs, s.pending[:0]
}

// count is how many seqs there are.
func (s *seqSet) count() int64 {
	s.merge()
	var n int64
	for _, r := range s.runs {
		n += r.last - r.first + 1
	}
	return n
}

// maxShownSeqs is how many seqs or runs of seqs String shows at most: a checkpoint file
// witnesses every checkpoint of the log, and a receiver that missed some has gaps.
const maxShownSeqs = 10

// String says which seqs there are, as runs of consecutive ones: "1, 2, 5–40, 43". Past
// maxShownSeqs parts, the first and last are shown, and how many seqs there are.
func (s *seqSet) String() string {
	s.merge()
	var parts []string
	for _, r := range s.runs {
		switch r.last - r.first {
		case 0:
			parts = append(parts, strconv.FormatInt(r.first, 10))
		case 1:
			parts = append(parts, strconv.FormatInt(r.first, 10), strconv.FormatInt(r.last, 10))
		default:
			parts = append(parts, fmt.Sprintf("%d–%d", r.first, r.last))
		}
	}
	if len(parts) <= maxShownSeqs {
		return strings.Join(parts, ", ")
	}
	half := maxShownSeqs / 2
	return fmt.Sprintf("%s, …, %s: %d checkpoints", strings.Join(parts[:half], ", "), strings.Join(parts[len(parts)-half:], ", "), s.count())
}
