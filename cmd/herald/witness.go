package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"

	"github.com/herald-notify/herald/ledger"
)

// witnessFile is the checkpoint file --witness names, the same in events verify and
// verify-bundle: the sealer's (HERALD_CHECKPOINT_FILE), or a checkpoint.signed receiver's copy
// of each payload's data, one checkpoint per line. It is read line by line, never whole: the
// sealer appends a line every HERALD_CHECKPOINT_INTERVAL, millions a year.
type witnessFile struct {
	name string
	// keys and until are what a line's signature is held to (ledger.CheckSigned); with no key
	// it is not checked, and the summary says so.
	keys  ledger.Keys
	until ledger.KeyRanges
	// from: the lines of checkpoints before it are read (each must be a checkpoint) but neither
	// checked nor yielded: what is verified starts at checkpoint from.
	from int64
	// What the last read found: the checkpoints yielded, and the lines before from.
	read, before int64
}

// openWitness checks, before anything else is read, that file can be read and holds a
// checkpoint: a witness that holds none would witness nothing, and a run given one must not read
// as though it had been held to a witness. Errors name the file, never what it holds, nor a
// value that looks like a key rather than a file name.
func openWitness(file string, keys ledger.Keys, until ledger.KeyRanges, from int64) (*witnessFile, error) {
	w := &witnessFile{name: file, keys: keys, until: until, from: from}
	switch err := w.scan(func(int, []byte) error { return errFound }); {
	case errors.Is(err, errFound):
		return w, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("--witness: %s holds no checkpoint: it would witness nothing (leave --witness out to check without one)", file)
}

// errFound stops a scan at the first line.
var errFound = errors.New("found a line")

// checkpoints yields the file's checkpoints, in its order, from checkpoint w.from on, each with
// its signature checked against w.keys (when there are any) and without its frontier (no check
// of a witness reads it). A line that is not a checkpoint, or whose signature does not check
// out, ends it with an error naming the file, the line and the checkpoint's seq: an auditor
// relies on every line, so one that is not what the sealer signed is refused, not skipped. So
// is a file that, read now, yields no checkpoint.
func (w *witnessFile) checkpoints() iter.Seq2[ledger.Checkpoint, error] {
	return func(yield func(ledger.Checkpoint, error) bool) {
		w.read, w.before = 0, 0
		stopped := false
		err := w.scan(func(n int, line []byte) error {
			cp, err := parseCheckpointLine(line)
			if err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			if cp.Seq < w.from {
				w.before++
				return nil
			}
			if len(w.keys) > 0 {
				if err := ledger.CheckSigned(&cp, w.keys, w.until); err != nil {
					// %v, not %w: the witness is at fault, and this must not read as a mismatch
					// of the log.
					return fmt.Errorf("line %d: %v: a line is relied on only if a key given with --public-key signed it", n, err)
				}
			}
			cp.Frontier = nil
			w.read++
			if !yield(cp, nil) {
				stopped = true
				return errFound
			}
			return nil
		})
		switch {
		case stopped:
			return
		case err == nil && w.read == 0 && w.before > 0:
			err = fmt.Errorf("--witness: %s holds no checkpoint from checkpoint %d on (--from-checkpoint), only %d before it: it would witness nothing of what is verified", w.name, w.from, w.before)
		case err == nil && w.read == 0:
			err = fmt.Errorf("--witness: %s holds no checkpoint: it would witness nothing (leave --witness out to check without one)", w.name)
		}
		if err != nil {
			yield(ledger.Checkpoint{}, err)
		}
	}
}

// scan calls fn with each line of the file that is not blank, and its number, until fn returns
// an error; an error names the file (and the line).
func (w *witnessFile) scan(fn func(n int, line []byte) error) error {
	f, err := os.Open(w.name)
	if err != nil {
		return w.openError(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 16<<10), checkpointLineMax)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			if errors.Is(err, errFound) {
				return err
			}
			return fmt.Errorf("--witness: %s %w", w.name, err)
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("--witness: %s line %d: longer than %d bytes: not a checkpoint", w.name, n+1, checkpointLineMax)
	case err != nil:
		return w.openError(err)
	}
	return nil
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
