package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// eventsVerifyLong is the help of events verify.
const eventsVerifyLong = `verify walks the event log in the order its consumers read it ((transaction_id,
global_position)) and the signed checkpoints, in one read-only snapshot, and recomputes:
  - every event's hash, from its contents and its stream's previous hash: a changed event, one
    removed from the middle of a stream, or events of one stream swapped or reordered, does
    not match;
  - that each stream's versions run from 1 without a gap;
  - every checkpoint's Merkle root over the events it covers, in the log's order, its tree
    size and frontier: a stream removed whole, a tail cut off, an event forged with its chain
    recomputed, or events of different streams swapped in the log's order (each stream's
    chain still links, so only the root catches it) does not match;
  - every checkpoint's Ed25519 signature, with --public-key: each checkpoint is checked with
    the key its key id names, and one signed by a key not given fails. The flag repeats: after
    a rotation, give the old key and the new one; the summary says which key signed which
    checkpoints. Without it signatures are not checked, and the summary says so: a key read
    from the database would prove nothing against whoever can change the database;
  - every subtree root the sealer stored (merkle_subtrees) among the events it walks: proofs
    are built from them, so a changed one would make proofs fail (it cannot forge one: a proof
    is checked against the signed root).

It stops at the first thing that does not match and exits non-zero, naming the position,
stream and version, or the checkpoint, and the field (hash, stream_version, tree_size, root,
frontier, signature, key_until, seq, witness, merkle_subtrees). Memory does not grow with the log. Progress shows on stderr when it
is a terminal.

--witness FILE reads a checkpoint file (HERALD_CHECKPOINT_FILE, the sealer's copy of each
checkpoint it signed) and --expect SEQ:ROOT a checkpoint noted elsewhere (its root in hex; the
flag repeats): each must be in the database with the same root (and tree size), or verify fails
naming it (field witness). This is what catches a log rewritten whole, its checkpoints deleted
and signed again by whoever holds the key or has the sealer sign for them. The file is read
line by line before the log, in constant memory however long it is. One that cannot be read or
holds no checkpoint is refused before anything else is read: it would witness nothing. A file
is read up to the size it had when verify opened it, before the database's snapshot is taken:
the sealer appends a line once its checkpoint is committed, so the lines it appends while
verify runs, whose checkpoints the snapshot lacks, are not read; a last line without its
newline that is not a whole checkpoint (one the sealer was writing, or one cut short) is not
read either, and the summary says so. A pipe (--witness <(ssh host cat checkpoints.jsonl)) is
read once, to its end: a line its source writes after the snapshot names a checkpoint the
snapshot lacks and fails as missing, so pipe a copy that does not grow while verify runs. With
--public-key each line's own signature must check out too (the key its key id names, within
its --key-until range): a line that is not a checkpoint, or whose signature does not, is
refused, naming the file, the line and the checkpoint's seq. Without --public-key the lines'
signatures are not checked, and the summary says so. With --from-checkpoint N, lines of
checkpoints before N are not compared (N's root commits to everything before it), and a file
with none from N on is refused.

With --public-key, a log with no checkpoint at all fails (nothing signed commits to it, so
nothing was verified against the key) unless --allow-unsealed is given.

--key-until KEY=SEQ trusts a --public-key (KEY: its key id, as "herald checkpoints list" shows
it, or the key as --public-key takes it) for checkpoints up to and including SEQ only: one it
signed after SEQ fails (field key_until), naming its seq and key id, however good its signature.
After a rotation, give the old key's last checkpoint: a checkpoint signed later with the old
key, which whoever holds it could still make, is refused. The flag repeats, once per key.

--from-checkpoint N starts from checkpoint N instead of the start of the log, once its
signature and frontier check out (and its key's range, with --key-until): only the events and
checkpoints after it are read.

What it cannot prove: events appended by someone holding both the database and the signing
key, and events appended or reordered after the last checkpoint by someone holding the
database (they are chained, but nothing signed commits to them or their order yet: events of
different streams swapped there pass; the summary counts them as unsealed).

Formats (-o):
  table   a summary in words
  json    {"ok", "events", "streams", "checkpoints", "signatures_checked",
          "signers": [{"key_id", "first_checkpoint", "last_checkpoint"}],
          "key_until": [{"key_id", "until_checkpoint"}], "witnessed", "subtrees",
          "from_checkpoint", "last_checkpoint", "unsealed", "elapsed_seconds", "events_per_second",
          "witness_file": {"file", "checkpoints", "signatures_checked", "before_from_checkpoint",
                           "unread_last_line_bytes"},
          "mismatch": {"position", "stream", "version", "checkpoint", "field", "reason"}}`

// eventsVerifyCommand checks the log's hash chains and signed checkpoints.
func eventsVerifyCommand() *cobra.Command {
	var (
		cli           cliDB
		publicKeys    []string
		keyUntil      []string
		from          int64
		witness       string
		expect        []string
		allowUnsealed bool
		output        *format
	)
	cmd := &cobra.Command{
		Use:   "verify [flags]",
		Short: "Check the log's hash chains, Merkle checkpoints and their signatures",
		Long:  eventsVerifyLong,
		Example: `  herald events verify --public-key checkpoint.pub
  herald events verify --public-key checkpoint.pub --witness /var/lib/herald/checkpoints.jsonl
  herald events verify --public-key old-checkpoint.pub --public-key checkpoint.pub
  herald events verify --public-key old-checkpoint.pub --public-key checkpoint.pub --key-until 1f0c4d2e9ab37765=40
  herald events verify --public-key 3q2+7w... --from-checkpoint 1200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := ledger.VerifyOptions{FromCheckpoint: from}
			if from < 0 {
				return fmt.Errorf("--from-checkpoint %d: want a checkpoint's seq, or 0 for the start of the log", from)
			}
			keys, err := parsePublicKeys(publicKeys)
			if err != nil {
				return err
			}
			opts.Keys = keys
			if opts.KeyUntil, err = parseKeyUntil(keyUntil, keys); err != nil {
				return err
			}
			// The witness file is opened now, and refused if it holds no checkpoint, before the
			// log is read; Verify reads its lines, after the --expect ones.
			var wf *witnessFile
			if witness != "" {
				if wf, err = openWitness(witness, keys, opts.KeyUntil, from); err != nil {
					return err
				}
				defer wf.Close()
			}
			expected, err := parseExpected(expect)
			if err != nil {
				return err
			}
			opts.Witnessed = keptCheckpoints(expected, wf)
			ctx := cmd.Context()
			pool, _, err := cli.connect(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			progress := newVerifyProgress(cmd.ErrOrStderr())
			opts.Progress = progress.update
			rep, err := ledger.Verify(ctx, pool, opts)
			progress.finish(rep)
			var m *ledger.Mismatch
			if err != nil && !errors.As(err, &m) {
				return err
			}
			if *output == formatJSON {
				v := wire.NewVerification(rep, m)
				v.WitnessFile = wf.report()
				if err := writeJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
			} else if m == nil {
				printVerification(cmd.OutOrStdout(), rep, opts.Keys, wf)
			}
			if m != nil {
				return fmt.Errorf("the log does not verify: %w (after %d events verified)", m, rep.Events)
			}
			if len(opts.Keys) > 0 && rep.LastCheckpoint == 0 && !allowUnsealed {
				return errors.New("the log has no checkpoint: nothing signed commits to it, so nothing was checked against --public-key (pass --allow-unsealed if the log was never sealed)")
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&publicKeys, "public-key", nil, publicKeyUsage)
	fs.StringArrayVar(&keyUntil, "key-until", nil, keyUntilUsage)
	fs.Int64Var(&from, "from-checkpoint", 0, "start from this checkpoint (trusted once its signature checks out) instead of the start of the log")
	output = registerFormat(fs, formatTable, formatJSON)
	fs.StringVar(&witness, "witness", "", "a checkpoint file (HERALD_CHECKPOINT_FILE): each of its checkpoints must be in the database as it is in the file and, with --public-key, signed by a key given")
	fs.StringArrayVar(&expect, "expect", nil, "SEQ:ROOT, a checkpoint's seq and its root in hex noted outside the database: it must be in the database (repeatable)")
	fs.BoolVar(&allowUnsealed, "allow-unsealed", false, "with --public-key, accept a log with no checkpoint at all")
	markArguments(fs, "public-key", "key-until", "from-checkpoint", "witness", "expect", "allow-unsealed")
	cli.register(newSettings(cmd))
	return cmd
}

// publicKeyUsage is --public-key's help, the same in verify and verify-bundle.
const publicKeyUsage = `a public key checkpoints may be signed with: its 32 bytes in base64 or hex (as "herald keys generate" prints it), or a file holding it; repeat it for each key the log was sealed with (a rotation's old and new), each checkpoint being checked with the key its key id names`

// keyUntilUsage is --key-until's help.
const keyUntilUsage = `KEY=SEQ: trust the --public-key KEY (its key id, as "herald checkpoints list" shows it, or the key as --public-key takes it) for checkpoints up to and including SEQ only, refusing one it signed later; after a rotation, the old key and its last checkpoint (repeatable, once per key)`

// parseKeyUntil reads the values of --key-until, each of a key among keys.
func parseKeyUntil(values []string, keys ledger.Keys) (ledger.KeyRanges, error) {
	r, err := ledger.ParseKeyRanges(values, keys)
	if err != nil {
		return nil, fmt.Errorf("--key-until: %w", err)
	}
	return r, nil
}

// parsePublicKeys reads the values of --public-key.
func parsePublicKeys(values []string) (ledger.Keys, error) {
	pubs := make([]ed25519.PublicKey, 0, len(values))
	for _, v := range values {
		pub, err := ledger.ParsePublicKey(v)
		if err != nil {
			return nil, fmt.Errorf("--public-key: %w", err)
		}
		pubs = append(pubs, pub)
	}
	return ledger.NewKeys(pubs...), nil
}

// parseExpected reads the values of --expect, the same in verify and verify-bundle.
func parseExpected(values []string) ([]ledger.Checkpoint, error) {
	cps := make([]ledger.Checkpoint, 0, len(values))
	for _, v := range values {
		cp, err := parseSeqRoot(v)
		if err != nil {
			return nil, fmt.Errorf("--expect %q: %w", v, err)
		}
		cps = append(cps, cp)
	}
	return cps, nil
}

// parseSeqRoot reads SEQ:ROOT.
func parseSeqRoot(s string) (ledger.Checkpoint, error) {
	seq, root, ok := strings.Cut(s, ":")
	if !ok {
		return ledger.Checkpoint{}, errors.New("want SEQ:ROOT, a checkpoint's seq and its root in hex")
	}
	var cp ledger.Checkpoint
	var err error
	if cp.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil || cp.Seq <= 0 {
		return cp, fmt.Errorf("seq %q: want a checkpoint's seq, 1 or more", seq)
	}
	b, err := hex.DecodeString(root)
	if err != nil || len(b) != ledger.HashSize {
		return cp, fmt.Errorf("root %q: want %d bytes in hex", root, ledger.HashSize)
	}
	copy(cp.Root[:], b)
	return cp, nil
}

// keptCheckpoints are the checkpoints kept outside the database that verify holds the database
// to: those of --expect, then the witness file's lines; nil for none.
func keptCheckpoints(expected []ledger.Checkpoint, wf *witnessFile) iter.Seq2[ledger.Checkpoint, error] {
	if len(expected) == 0 && wf == nil {
		return nil
	}
	return func(yield func(ledger.Checkpoint, error) bool) {
		for _, cp := range expected {
			if !yield(cp, nil) {
				return
			}
		}
		if wf != nil {
			for cp, err := range wf.checkpoints() {
				if !yield(cp, err) {
					return
				}
			}
		}
	}
}

// printVerification says in words what a clean verification checked; wf is the witness file,
// nil for none.
func printVerification(w io.Writer, rep ledger.VerifyReport, keys ledger.Keys, wf *witnessFile) {
	from := "the start of the log"
	if rep.FromCheckpoint != 0 {
		from = fmt.Sprintf("checkpoint %d", rep.FromCheckpoint)
	}
	fmt.Fprintf(w, "Verified %d events (%d streams begun) and %d checkpoints from %s in %s%s.\n",
		rep.Events, rep.Streams, rep.Checkpoints, from, rep.Elapsed.Round(time.Millisecond), rateSuffix(rep))
	switch {
	case rep.Signed:
		fmt.Fprintf(w, "Signatures checked: %s.\n", signerRanges(rep.Signers))
		if len(rep.KeyUntil) > 0 {
			fmt.Fprintf(w, "Keys held to their ranges (--key-until): %s.\n", keyRanges(rep.KeyUntil))
		}
	case len(keys) == 1:
		fmt.Fprintf(w, "No signature checked: no checkpoint to check against key %s.\n", keys.IDs()[0])
	case len(keys) > 1:
		fmt.Fprintf(w, "No signature checked: no checkpoint to check against keys %s.\n", strings.Join(keys.IDs(), ", "))
	default:
		fmt.Fprintln(w, "Signatures NOT checked: pass --public-key to check them.")
	}
	if rep.Subtrees > 0 {
		fmt.Fprintf(w, "%d stored subtree roots, from which proofs are built, match the log.\n", rep.Subtrees)
	}
	if rep.Witnessed > 0 {
		fmt.Fprintf(w, "%d witnessed checkpoints found in the database as witnessed.\n", rep.Witnessed)
		switch {
		case wf != nil && len(keys) > 0 && len(rep.KeyUntil) > 0:
			fmt.Fprintf(w, "--witness %s: %d checkpoints, each signed by a key given, within its range (--key-until).\n", wf.name, wf.read)
		case wf != nil && len(keys) > 0:
			fmt.Fprintf(w, "--witness %s: %d checkpoints, each signed by a key given.\n", wf.name, wf.read)
		case wf != nil:
			fmt.Fprintf(w, "--witness %s: %d checkpoints, their signatures NOT checked: pass --public-key to check them.\n", wf.name, wf.read)
		}
		if wf != nil && wf.before > 0 {
			fmt.Fprintf(w, "--witness %s: %d checkpoints before checkpoint %d (--from-checkpoint) not compared.\n", wf.name, wf.before, wf.from)
		}
		wf.printPartial(w)
	} else {
		fmt.Fprintln(w, "No witness given (--witness, --expect): a log rewritten with its checkpoints signed again would verify.")
	}
	switch {
	case rep.LastCheckpoint == 0:
		fmt.Fprintln(w, "No checkpoint: the chains are whole, but nothing signed commits to the log.")
	case rep.Unsealed > 0:
		fmt.Fprintf(w, "Last checkpoint %d; %d events after it are chained but not yet signed.\n", rep.LastCheckpoint, rep.Unsealed)
	default:
		fmt.Fprintf(w, "Last checkpoint %d covers every event.\n", rep.LastCheckpoint)
	}
}

// signerRanges says which key signed which checkpoints: "key K checkpoints 1–40, key L 41–52".
func signerRanges(rs []ledger.SignedRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		span := fmt.Sprintf("%d–%d", r.First, r.Last)
		if r.First == r.Last {
			span = fmt.Sprint(r.First)
		}
		switch {
		case i > 0:
			parts[i] = fmt.Sprintf("key %s %s", r.KeyID, span)
		case r.First == r.Last:
			parts[i] = fmt.Sprintf("key %s checkpoint %s", r.KeyID, span)
		default:
			parts[i] = fmt.Sprintf("key %s checkpoints %s", r.KeyID, span)
		}
	}
	return strings.Join(parts, ", ")
}

// keyRanges says up to which checkpoint each key is trusted: "key K up to checkpoint 40, key L
// up to 52", in the order the ranges end.
func keyRanges(r ledger.KeyRanges) string {
	ids := r.IDs()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("key %s up to checkpoint %d", id, r[id])
	}
	return strings.Join(parts, ", ")
}

// rateSuffix is the rate the summary gives, when the walk was long enough to measure one.
func rateSuffix(rep ledger.VerifyReport) string {
	if r := rep.Rate(); r > 0 {
		return fmt.Sprintf(": %.0f events/s", r)
	}
	return ""
}

// progressText is what the progress line says of the walk so far: the count, and the rate once
// there is enough behind it to mean something.
func progressText(rep ledger.VerifyReport) string {
	unit := "events"
	if rep.Events == 1 {
		unit = "event"
	}
	if r := rep.Rate(); r > 0 {
		return fmt.Sprintf("verifying: %d %s, %.0f events/s", rep.Events, unit, r)
	}
	return fmt.Sprintf("verifying: %d %s", rep.Events, unit)
}

// verifyProgress shows how many events have been verified, on w when it is a terminal. The text
// is ours (progressText): the bar's own rate, taken over its first microseconds, is noise.
type verifyProgress struct{ bar *progressbar.ProgressBar }

func newVerifyProgress(w io.Writer) *verifyProgress {
	f, ok := w.(*os.File)
	if !ok {
		return &verifyProgress{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &verifyProgress{}
	}
	return &verifyProgress{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(progressText(ledger.VerifyReport{})),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

func (p *verifyProgress) update(rep ledger.VerifyReport) {
	if p.bar != nil {
		p.bar.Describe(progressText(rep))
	}
}

func (p *verifyProgress) finish(rep ledger.VerifyReport) {
	if p.bar != nil {
		p.bar.Describe(progressText(rep))
		_ = p.bar.Finish()
	}
}
