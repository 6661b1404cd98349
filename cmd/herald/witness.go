package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// witnessFile is the checkpoint file --witness names, the same in events verify and
// verify-bundle: the sealer's (HERALD_CHECKPOINT_FILE), or a checkpoint.signed receiver's copy
// of each payload's data, one checkpoint per line. It is read line by line, never whole: the
// sealer appends a line every HERALD_CHECKPOINT_INTERVAL, millions a year.
//
// It is opened once (openWitness) and read in one pass (checkpoints), so that a pipe
// (--witness <(ssh host cat checkpoints.jsonl)) is read as a file is. A regular file is read up
// to the size it had when it was opened, before the database is connected to: the sealer
// appends a checkpoint's line only once the checkpoint is committed, so every line read names
// a checkpoint the verifier's snapshot, taken later, holds. Lines the sealer appends during a
// long read are not read. A pipe has no size: it is read to its end.
type witnessFile struct {
	name string
	// keys and until are what a line's signature is held to (ledger.CheckSigned); with no key
	// it is not checked, and the summary says so.
	keys  ledger.Keys
	until ledger.KeyRanges
	// from: the lines of checkpoints before it are read (each must be a checkpoint) but neither
	// checked nor yielded: what is verified starts at checkpoint from.
	from int64

	f  *os.File
	sc *bufio.Scanner
	// size is how much of a regular file is read (its size when it was opened); -1 for a pipe
	// or another file with no size, read to its end.
	size int64
	// n is the number of the line the scanner read last; first is the first line that is not
	// blank (numbered firstN), read by openWitness and handed back to checkpoints.
	n, firstN int
	first     []byte
	// unterminated: the line the scanner read last ends the file (or its size) without a
	// newline.
	unterminated bool
	used         bool

	// What the read found: the checkpoints yielded, the lines before from, and the length of a
	// last line without a newline that is no whole checkpoint, left unread (0: none).
	read, before int64
	partial      int
}

// openWitness opens file and checks, before anything else is read, that it can be read and
// holds a line: a witness that holds none would witness nothing, and a run given one must not
// read as though it had been held to a witness. The file stays open, its first line read, until
// checkpoints reads the rest (or Close). Errors name the file, never what it holds, nor a value
// that looks like a key rather than a file name.
func openWitness(file string, keys ledger.Keys, until ledger.KeyRanges, from int64) (*witnessFile, error) {
	w := &witnessFile{name: file, keys: keys, until: until, from: from, size: -1}
	f, err := os.Open(file)
	if err != nil {
		return nil, w.openError(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, w.openError(err)
	}
	var r io.Reader = f
	if st.Mode().IsRegular() {
		w.size = st.Size()
		r = io.LimitReader(f, w.size)
	}
	w.f = f
	w.sc = bufio.NewScanner(r)
	w.sc.Buffer(make([]byte, 0, 16<<10), checkpointLineMax)
	w.sc.Split(w.splitLines)
	line, err := w.next()
	switch {
	case err != nil:
		w.Close()
		return nil, err
	case line == nil:
		w.Close()
		return nil, fmt.Errorf("--witness: %s holds no checkpoint: it would witness nothing (leave --witness out to check without one)", file)
	}
	w.first, w.firstN = bytes.Clone(line), w.n
	return w, nil
}

// Close closes the file; checkpoints closes it once read.
func (w *witnessFile) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// checkpoints yields the file's checkpoints, in its order, from checkpoint w.from on, each with
// its signature checked against w.keys (when there are any) and without its frontier (no check
// of a witness reads it). A line that is not a checkpoint, or whose signature does not check
// out, ends it with an error naming the file, the line and the checkpoint's seq: an auditor
// relies on every line, so one that is not what the sealer signed is refused, not skipped. So
// is a file that yields no checkpoint. The file is read once: a second call yields an error.
func (w *witnessFile) checkpoints() iter.Seq2[ledger.Checkpoint, error] {
	return func(yield func(ledger.Checkpoint, error) bool) {
		if w.used {
			yield(ledger.Checkpoint{}, fmt.Errorf("--witness: %s was read already: it is read once", w.name))
			return
		}
		w.used = true
		defer w.Close()
		n, line := w.firstN, w.first
		w.first = nil
		for line != nil {
			cp, err := parseCheckpointLine(line)
			switch {
			case err != nil && w.unterminated:
				// The last line, without its newline, is no whole checkpoint. The sealer writes
				// each line whole with its newline, in one write, after the checkpoint commits:
				// this is one it was writing as the file was opened (its size cut it), or one a
				// crash cut short. Its checkpoint is in the database either way, and it is not
				// read, only counted: refusing it would fail a healthy log whenever the read
				// meets the sealer's write, and a file cut anywhere else witnesses only what it
				// holds, as any copy does. A whole checkpoint without a newline (a copy made by
				// hand) is read as any line.
				w.partial = len(line)
			case err != nil:
				yield(ledger.Checkpoint{}, fmt.Errorf("--witness: %s line %d: %w", w.name, n, err))
				return
			case cp.Seq < w.from:
				w.before++
			default:
				if len(w.keys) > 0 {
					if err := ledger.CheckSigned(&cp, w.keys, w.until); err != nil {
						// %v, not %w: the witness is at fault, and this must not read as a
						// mismatch of the log.
						yield(ledger.Checkpoint{}, fmt.Errorf("--witness: %s line %d: %v: a line is relied on only if a key given with --public-key signed it", w.name, n, err))
						return
					}
				}
				cp.Frontier = nil
				w.read++
				if !yield(cp, nil) {
					return
				}
			}
			if line, err = w.next(); err != nil {
				yield(ledger.Checkpoint{}, err)
				return
			}
			n = w.n
		}
		var err error
		switch {
		case w.read == 0 && w.before > 0:
			err = fmt.Errorf("--witness: %s holds no checkpoint from checkpoint %d on (--from-checkpoint), only %d before it: it would witness nothing of what is verified", w.name, w.from, w.before)
		case w.read == 0 && w.partial > 0:
			err = fmt.Errorf("--witness: %s holds no checkpoint: its only line, without a newline, is not a whole one: it would witness nothing (leave --witness out to check without one)", w.name)
		case w.read == 0:
			err = fmt.Errorf("--witness: %s holds no checkpoint: it would witness nothing (leave --witness out to check without one)", w.name)
		}
		if err != nil {
			yield(ledger.Checkpoint{}, err)
		}
	}
}

// report is what was read of the file, for -o json; nil for no file.
func (w *witnessFile) report() *wire.WitnessFile {
	if w == nil {
		return nil
	}
	return &wire.WitnessFile{File: w.name, Checkpoints: w.read, SignaturesChecked: len(w.keys) > 0,
		BeforeFromCheckpoint: w.before, UnreadLastLineBytes: w.partial}
}

// printPartial says, when the file's last line was left unread as no whole checkpoint, that it
// was; w may be nil (no --witness).
func (w *witnessFile) printPartial(out io.Writer) {
	if w == nil || w.partial == 0 {
		return
	}
	fmt.Fprintf(out, "--witness %s: its last line, %d bytes without a newline, is no whole checkpoint: not read (a line being written as the file was opened, or one cut short).\n", w.name, w.partial)
}

// next returns the next line of the file that is not blank, nil at its end; an error names the
// file (and the line).
func (w *witnessFile) next() ([]byte, error) {
	for w.sc.Scan() {
		w.n++
		if line := bytes.TrimSpace(w.sc.Bytes()); len(line) > 0 {
			return line, nil
		}
	}
	switch err := w.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, fmt.Errorf("--witness: %s line %d: longer than %d bytes: not a checkpoint", w.name, w.n+1, checkpointLineMax)
	case err != nil:
		return nil, w.openError(err)
	}
	return nil, nil
}

// splitLines is bufio.ScanLines, noting whether the line it returns ends without a newline.
func (w *witnessFile) splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		w.unterminated = true
		return len(data), data, nil
	}
	return 0, nil, nil
}

// openError says why the file could not be read, without repeating a value that looks like a
// key rather than a file name.
func (w *witnessFile) openError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) && !inADirectory(w.name) && ledger.LooksLikeKeyMaterial(w.name) {
		return fmt.Errorf("--witness: not a checkpoint file that can be read (%v); the value is not repeated: it looks like a key, not a file name", pe.Err)
	}
	return fmt.Errorf("--witness: %w", err)
}

// inADirectory says whether path names something in a directory that exists, other than the
// current or the root one: a file name, however much it looks like base64 (/tmp/…/001 does).
func inADirectory(path string) bool {
	dir := filepath.Dir(path)
	if dir == "." || dir == string(filepath.Separator) {
		return false
	}
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
