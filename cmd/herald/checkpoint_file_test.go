package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// tornCheckpoints returns n signed checkpoints and the JSON line of each, without its newline.
func tornCheckpoints(t *testing.T, n int) ([]ledger.Checkpoint, [][]byte) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var cps []ledger.Checkpoint
	var lines [][]byte
	for seq := int64(1); seq <= int64(n); seq++ {
		cp := ledger.Checkpoint{Seq: seq, TreeSize: seq, LastTransactionID: uint64(seq) * 10, LastPosition: seq,
			Root: ledger.Hash{byte(seq)}, Frontier: make([]byte, ledger.HashSize), CreatedAt: time.Unix(seq*10, 0).UTC()}
		cp.Sign(key)
		var b bytes.Buffer
		if err := writeJSONLine(&b, wire.NewCheckpoint(cp)); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
		lines = append(lines, bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	}
	return cps, lines
}

// A checkpoint file whose last line a crash cut short: the sealer reads the last whole line as
// the last witnessed checkpoint, and its next line goes on a line of its own, the torn one cut
// off; a last line whole but for its newline counts, and gets its newline. Every line of the
// file is then a checkpoint.
func TestCheckpointFileMendsATornLastLine(t *testing.T) {
	cps, lines := tornCheckpoints(t, 3)
	for _, c := range []struct {
		name     string
		content  string
		lastSeq  int64 // 0: none witnessed
		wantSeqs []int64
	}{
		{"cut mid-line", string(lines[0]) + "\n" + string(lines[1][:len(lines[1])/2]), 1, []int64{1, 3}},
		{"whole but its newline", string(lines[0]) + "\n" + string(lines[1]), 2, []int64{1, 2, 3}},
		{"only a torn line", string(lines[0][:10]), 0, []int64{3}},
		{"whole lines", string(lines[0]) + "\n" + string(lines[1]) + "\n", 2, []int64{1, 2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
			if err := os.WriteFile(file, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			last, err := lastCheckpointInFile(file)
			switch {
			case err != nil:
				t.Fatalf("last checkpoint in the file: %v", err)
			case c.lastSeq == 0 && last != nil:
				t.Errorf("last checkpoint in the file: %d, want none", last.Seq)
			case c.lastSeq != 0 && (last == nil || last.Seq != c.lastSeq):
				t.Errorf("last checkpoint in the file: %+v, want seq %d", last, c.lastSeq)
			}
			if err := appendCheckpoint(file, cps[2]); err != nil {
				t.Fatalf("append: %v", err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				cp, err := parseCheckpointLine([]byte(line))
				if err != nil {
					t.Fatalf("line %d of the file after the append: %v\n%s", i+1, err, data)
				}
				seqs = append(seqs, cp.Seq)
			}
			if !strings.HasSuffix(string(data), "\n") || len(seqs) != len(c.wantSeqs) {
				t.Fatalf("the file after the append holds checkpoints %v, want %v:\n%s", seqs, c.wantSeqs, data)
			}
			for i := range seqs {
				if seqs[i] != c.wantSeqs[i] {
					t.Errorf("the file after the append holds checkpoints %v, want %v", seqs, c.wantSeqs)
					break
				}
			}
			if last, err := lastCheckpointInFile(file); err != nil || last == nil || last.Seq != 3 {
				t.Errorf("last checkpoint after the append: %+v, %v; want 3", last, err)
			}
		})
	}
}
