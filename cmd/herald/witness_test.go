package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// noDatabase is a database URL nothing answers at: a command that gets as far as connecting
// fails naming the connection.
const noDatabase = "postgres://nobody@127.0.0.1:1/none"

// A witness file with no checkpoint in it — empty, or blank lines only — is refused by events
// verify before the log is read (here there is no database to read it from), naming the file,
// as verify-bundle refuses it: it would witness nothing, yet the run would read as witnessed.
func TestVerifyRefusesAnEmptyWitness(t *testing.T) {
	clearHeraldEnv(t)
	dir := t.TempDir()
	for name, body := range map[string]string{"empty.jsonl": "", "blank.jsonl": "\n  \n\n"} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"table", "json"} {
			_, err := runHerald(t, "events", "verify", "--witness", file, "-o", format, "--database-url", noDatabase)
			if err == nil || err.Error() != "--witness: "+file+" holds no checkpoint: it would witness nothing (leave --witness out to check without one)" {
				t.Errorf("events verify -o %s --witness %s: %v; want the file refused as holding no checkpoint, before connecting", format, name, err)
			}
		}
	}
}

// Each line of a witness file is a kept copy an auditor relies on, so its own signature must
// check out with the keys given, in events verify and verify-bundle alike: a line changed where
// only the signature shows it (its time), or signed by a key not given, is refused, naming the
// file, the line and the checkpoint, and never repeating the line's signature. events verify
// holds the lines to --key-until too. Without --public-key, events verify cannot check them and
// says so. With --from-checkpoint N, lines before N are not relied on: signed by a key not
// given, they pass, and a file with nothing from N on is refused.
func TestWitnessLinesMustBeSigned(t *testing.T) {
	l := newRotatedLog(t)
	lines := strings.SplitAfter(strings.TrimSpace(readFile(t, l.cpFile)), "\n")
	if len(lines) != 3 {
		t.Fatalf("the checkpoint file holds %d lines, want 3", len(lines))
	}
	line := func(i int, change func(*ledger.Checkpoint)) string {
		t.Helper()
		var w wire.Checkpoint
		if err := json.Unmarshal([]byte(lines[i]), &w); err != nil {
			t.Fatal(err)
		}
		cp, err := w.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		change(&cp)
		return mustJSON(t, wire.NewCheckpoint(cp)) + "\n"
	}
	_, keyC, _ := ed25519.GenerateKey(nil)
	idA, idB, idC := l.cps[0].KeyID, l.cps[2].KeyID, ledger.KeyID(keyC.Public().(ed25519.PublicKey))
	later := l.write("later.jsonl", lines[0]+line(1, func(cp *ledger.Checkpoint) { cp.CreatedAt = cp.CreatedAt.Add(time.Microsecond) })+lines[2])
	byC := l.write("by-c.jsonl", line(0, func(cp *ledger.Checkpoint) { cp.Sign(keyC) })+lines[1]+lines[2])
	verify := func(args ...string) (string, error) {
		return runHerald(t, append([]string{"events", "verify", "--database-url", l.db.URL}, args...)...)
	}
	both := []string{"--public-key", l.a, "--public-key", l.b}
	for _, tt := range []struct {
		name, file string
		line, seq  int
		says       string
		signature  string // the line's signature, which no error may repeat
	}{
		{"its time changed", later, 2, 2, "signature: the signature does not match the checkpoint", ""},
		{"signed by a key not given", byC, 1, 1, fmt.Sprintf("signature: signed by key %s, not by any of the trusted keys %s", idC, strings.Join(ledger.NewKeys(mustKey(t, l.a), mustKey(t, l.b)).IDs(), ", ")), ""},
	} {
		want := fmt.Sprintf("--witness: %s line %d: checkpoint %d: %s", tt.file, tt.line, tt.seq, tt.says)
		var w wire.Checkpoint
		if err := json.Unmarshal([]byte(strings.Split(readFile(t, tt.file), "\n")[tt.line-1]), &w); err != nil {
			t.Fatal(err)
		}
		out, err := verify(append(both, "--witness", tt.file)...)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error()+out, w.Signature) {
			t.Errorf("events verify --witness with a line %s: %v\n%s\nwant %q", tt.name, err, out, want)
		}
		// verify-bundle of checkpoint 2 relies on line 2 only, and refuses the file all the same.
		out, err = l.verifyBundle(l.bundle, "--witness", tt.file)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error()+out, w.Signature) {
			t.Errorf("verify-bundle --witness with a line %s: %v\n%s\nwant %q", tt.name, err, out, want)
		}
	}

	// The true file with both keys: every line checked, and said so.
	out, err := verify(append(both, "--witness", l.cpFile)...)
	if err != nil || !strings.Contains(out, "3 witnessed checkpoints found") || !strings.Contains(out, fmt.Sprintf("--witness %s: 3 checkpoints, each signed by a key given.", l.cpFile)) {
		t.Errorf("events verify --witness with both keys: %v\n%s", err, out)
	}
	// A's lines past its range.
	want := fmt.Sprintf("--witness: %s line 2: checkpoint 2: key_until: signed by key %s, which is trusted up to checkpoint 1 only", l.cpFile, idA)
	if _, err := verify(append(both, "--key-until", idA+"=1", "--witness", l.cpFile)...); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("events verify --key-until %s=1 --witness: %v; want %q", idA, err, want)
	}
	// B alone: A's line 1 is refused, and verify-bundle refuses it the same way.
	want = fmt.Sprintf("--witness: %s line 1: checkpoint 1: signature: signed by key %s, not by the trusted key %s", l.cpFile, idA, idB)
	if _, err := verify("--public-key", l.b, "--witness", l.cpFile); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("events verify --public-key B --witness: %v; want %q", err, want)
	}
	export := l.write("export.json", mustRunHerald(t, "events", "export", "--stream", l.stream, "--proof", "--database-url", l.db.URL))
	if _, err := runHerald(t, "verify-bundle", export, "--public-key", l.b, "--witness", l.cpFile); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("verify-bundle --public-key B --witness: %v; want %q", err, want)
	}
	// From checkpoint 3 on, B alone: lines 1 and 2 are not relied on.
	out, err = verify("--public-key", l.b, "--from-checkpoint", "3", "--witness", l.cpFile)
	if err != nil || !strings.Contains(out, "1 witnessed checkpoints found") ||
		!strings.Contains(out, fmt.Sprintf("--witness %s: 2 checkpoints before checkpoint 3 (--from-checkpoint) not compared.", l.cpFile)) {
		t.Errorf("events verify --public-key B --from-checkpoint 3 --witness: %v\n%s", err, out)
	}
	before := l.write("before-3.jsonl", lines[0]+lines[1])
	want = fmt.Sprintf("--witness: %s holds no checkpoint from checkpoint 3 on (--from-checkpoint), only 2 before it", before)
	if _, err := verify("--public-key", l.b, "--from-checkpoint", "3", "--witness", before); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("events verify --from-checkpoint 3 --witness of checkpoints 1 and 2: %v; want %q", err, want)
	}
	// No key: nothing to check the lines with, and the summary says so.
	out, err = verify("--witness", later)
	if err != nil || !strings.Contains(out, fmt.Sprintf("--witness %s: 3 checkpoints, their signatures NOT checked: pass --public-key to check them.", later)) {
		t.Errorf("events verify --witness without a key: %v\n%s", err, out)
	}
}

func mustKey(t *testing.T, s string) ed25519.PublicKey {
	t.Helper()
	pub, err := ledger.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// events verify and verify-bundle read a witness file line by line: given one far larger than
// what they need (here its three checkpoints, again and again, each line padded to near the
// longest a line may be), their peak memory stays far below the file's size.
func TestWitnessIsReadInBoundedMemory(t *testing.T) {
	l := newRotatedLog(t)
	lines := strings.Split(strings.TrimSpace(readFile(t, l.cpFile)), "\n")
	big := filepath.Join(l.dir, "big.jsonl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	const copies = 2700
	for i := range copies {
		line := lines[i%len(lines)]
		pad := strings.Repeat(" ", checkpointLineMax-len(line)-100)
		if _, err := f.WriteString(line[:len(line)-1] + pad + "}\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	// peakRSS runs herald as a process and returns its peak resident memory.
	peakRSS := func(want string, args ...string) int64 {
		t.Helper()
		h := spawnHerald(t, nil, args...)
		if !h.wait(120*time.Second) || h.cmd.ProcessState.ExitCode() != 0 || !strings.Contains(h.output(), want) {
			t.Fatalf("herald %s: exit %d, want 0 and %q:\n%s", strings.Join(args, " "), h.cmd.ProcessState.ExitCode(), want, h.output())
		}
		return h.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	}
	verify := []string{"events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b}
	base := peakRSS("3 checkpoints", verify...)
	withWitness := peakRSS(fmt.Sprintf("%d witnessed checkpoints found", copies), append(verify, "--witness", big)...)
	bundle := peakRSS("Checkpoint 2 is as witnessed", "verify-bundle", l.bundle, "--public-key", l.a, "--public-key", l.b, "--witness", big)
	t.Logf("witness file %d MB; peak RSS: verify %d MB, with the witness %d MB; verify-bundle with it %d MB",
		st.Size()>>20, base>>20, withWitness>>20, bundle>>20)
	for name, rss := range map[string]int64{"events verify": withWitness, "verify-bundle": bundle} {
		if limit := base + st.Size()/4; rss > limit {
			t.Errorf("%s --witness of %d MB: peak RSS %d MB, over %d MB (verify without it: %d MB)", name, st.Size()>>20, rss>>20, limit>>20, base>>20)
		}
	}
}

// BenchmarkWitnessRead reads a checkpoint file of realistic lines (a frontier of 12 hashes, as a
// log of some millions of events has) as events verify --witness does before it looks them up:
// each line parsed and, with a key, its signature checked. It reports the lines read a second,
// and the bytes allocated per read, none of which stays: the file is never held whole.
func BenchmarkWitnessRead(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	const lines = 20_000
	file := filepath.Join(b.TempDir(), "checkpoints.jsonl")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	for seq := int64(1); seq <= lines; seq++ {
		cp := ledger.Checkpoint{Seq: seq, TreeSize: seq * 500, LastTransactionID: uint64(seq) * 400, LastPosition: seq * 500,
			Root: ledger.Hash{byte(seq), byte(seq >> 8)}, Frontier: make([]byte, 12*ledger.HashSize), CreatedAt: time.Unix(seq*10, 0)}
		cp.Sign(key)
		if err := writeJSONLine(f, wire.NewCheckpoint(cp)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(file)
	for name, keys := range map[string]ledger.Keys{"signatures checked": ledger.NewKeys(key.Public().(ed25519.PublicKey)), "no key": nil} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(st.Size())
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				wf, err := openWitness(file, keys, nil, 0)
				if err != nil {
					b.Fatal(err)
				}
				for _, err := range wf.checkpoints() {
					if err != nil {
						b.Fatal(err)
					}
				}
				if wf.read != lines {
					b.Fatalf("read %d lines, want %d", wf.read, lines)
				}
			}
			b.ReportMetric(float64(b.N*lines)/time.Since(start).Seconds(), "lines/s")
		})
	}
}

// The sealer appends a checkpoint's line once the checkpoint is committed, so a line it appends
// while events verify reads its live file names a checkpoint the verifier's snapshot lacks.
// verify reads the file only up to the size it had when it was opened, before the snapshot:
// a checkpoint sealed, and its line appended, once the snapshot is taken (here, as the witness
// is about to be read) is neither in the snapshot nor read, and the healthy log verifies
// instead of reading as rewritten ("missing from the database"). Verified again, the line is
// read and its checkpoint found.
func TestVerifyReadsTheWitnessAsItWasWhenOpened(t *testing.T) {
	l := newRotatedLog(t)
	keys := ledger.NewKeys(mustKey(t, l.a), mustKey(t, l.b))
	wf, err := openWitness(l.cpFile, keys, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	sealed := false
	opts := ledger.VerifyOptions{Keys: keys, Witnessed: func(yield func(ledger.Checkpoint, error) bool) {
		// Verify reads the witness in its snapshot: the sealer commits checkpoint 4 and
		// appends its line now.
		l.seal(l.keyB, 4)
		sealed = true
		for cp, err := range wf.checkpoints() {
			if !yield(cp, err) {
				return
			}
		}
	}}
	rep, err := ledger.Verify(t.Context(), l.db.Pool, opts)
	if err != nil || !sealed || rep.Witnessed != 3 || wf.read != 3 || rep.LastCheckpoint != 3 {
		t.Errorf("verify while checkpoint 4's line was appended: %+v, %v; want the 3 lines there when the file was opened witnessed, and checkpoint 4 in neither", rep, err)
	}
	if lines := strings.Count(readFile(t, l.cpFile), "\n"); lines != 4 {
		t.Fatalf("the checkpoint file holds %d lines, want 4", lines)
	}
	out, err := runHerald(t, "events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b, "--witness", l.cpFile)
	if err != nil || !strings.Contains(out, "4 witnessed checkpoints found") {
		t.Errorf("events verify --witness of the 4 lines: %v\n%s", err, out)
	}
}

// The sealer writes each line whole, with its newline; a last line without one that is no whole
// checkpoint is one it was writing as the file was opened (the size read cut it), or one a crash
// cut short. Its checkpoint is in the database either way: events verify and verify-bundle do
// not read it, and say so, rather than fail a healthy log. A whole checkpoint without its
// newline is read as any line; a line cut short that is not the last is refused.
func TestWitnessLastLineWithoutNewline(t *testing.T) {
	l := newRotatedLog(t)
	all := readFile(t, l.cpFile)
	lines := strings.SplitAfter(strings.TrimSpace(all), "\n")
	cut := l.write("cut.jsonl", all+lines[2][:100])
	whole := l.write("whole.jsonl", strings.TrimSuffix(all, "\n"))
	only := l.write("only-cut.jsonl", lines[0][:100])
	inside := l.write("cut-inside.jsonl", lines[0]+lines[1][:100]+"\n"+lines[2])
	verify := func(file string) (string, error) {
		return runHerald(t, "events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b, "--witness", file)
	}
	note := fmt.Sprintf("--witness %s: its last line, 100 bytes without a newline, is no whole checkpoint: not read (a line being written as the file was opened, or one cut short).", cut)
	out, err := verify(cut)
	if err != nil || !strings.Contains(out, fmt.Sprintf("--witness %s: 3 checkpoints, each signed by a key given.", cut)) || !strings.Contains(out, note) {
		t.Errorf("events verify --witness with a last line cut short: %v\n%s\nwant 3 checkpoints read and %q", err, out, note)
	}
	// -o json says the same: what was read of the file, and the line left unread.
	out, err = runHerald(t, "events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b, "--witness", cut, "-o", "json")
	var v wire.Verification
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.WitnessFile == nil ||
		*v.WitnessFile != (wire.WitnessFile{File: cut, Checkpoints: 3, SignaturesChecked: true, UnreadLastLineBytes: 100}) {
		t.Errorf("events verify --witness -o json with a last line cut short: %v, witness_file %+v\n%s\nwant 3 checkpoints read, signatures checked, 100 bytes unread", err, v.WitnessFile, out)
	}
	out, err = runHerald(t, "events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b, "-o", "json")
	if err != nil || strings.Contains(out, "witness_file") {
		t.Errorf("events verify -o json without --witness: %v\n%s\nwant no witness_file", err, out)
	}
	out, err = l.verifyBundle(l.bundle, "--witness", cut)
	if err != nil || !strings.Contains(out, "Checkpoint 2 is as witnessed") || !strings.Contains(out, note) {
		t.Errorf("verify-bundle --witness with a last line cut short: %v\n%s\nwant it witnessed and %q", err, out, note)
	}
	out, err = verify(whole)
	if err != nil || !strings.Contains(out, fmt.Sprintf("--witness %s: 3 checkpoints, each signed by a key given.", whole)) || strings.Contains(out, "no whole checkpoint") {
		t.Errorf("events verify --witness whose last line has no newline: %v\n%s\nwant its 3 lines read", err, out)
	}
	want := fmt.Sprintf("--witness: %s holds no checkpoint: its only line, without a newline, is not a whole one", only)
	if _, err := verify(only); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("events verify --witness holding only a line cut short: %v; want %q", err, want)
	}
	want = fmt.Sprintf("--witness: %s line 2: not a checkpoint as JSON", inside)
	if _, err := verify(inside); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("events verify --witness with its second line cut short: %v; want %q", err, want)
	}
}

// --witness <(ssh host cat checkpoints.jsonl) names a pipe, which can be read once: events
// verify and verify-bundle open it once and read it in one pass, checking its first line before
// the rest as they do a file's. Every line of one far longer than a first read (90 lines, over
// 16 KiB) is read and counted.
func TestWitnessFromAPipe(t *testing.T) {
	l := newRotatedLog(t)
	body := strings.Repeat(readFile(t, l.cpFile), 30)
	if len(body) <= 16<<10 {
		t.Fatalf("the witness is %d bytes; want over 16 KiB", len(body))
	}
	pipe := func() string {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		go func() {
			defer w.Close()
			_, _ = io.WriteString(w, body)
		}()
		return fmt.Sprintf("/dev/fd/%d", r.Fd())
	}
	file := pipe()
	out, err := runHerald(t, "events", "verify", "--database-url", l.db.URL, "--public-key", l.a, "--public-key", l.b, "--witness", file)
	if err != nil || !strings.Contains(out, "90 witnessed checkpoints found") || !strings.Contains(out, fmt.Sprintf("--witness %s: 90 checkpoints, each signed by a key given.", file)) {
		t.Errorf("events verify --witness %s, a pipe of 90 lines: %v\n%s", file, err, out)
	}
	file = pipe()
	out, err = l.verifyBundle(l.bundle, "--witness", file)
	if err != nil || !strings.Contains(out, fmt.Sprintf("Checkpoint 2 is as witnessed (--witness %s)", file)) {
		t.Errorf("verify-bundle --witness %s, a pipe of 90 lines: %v\n%s", file, err, out)
	}
}
