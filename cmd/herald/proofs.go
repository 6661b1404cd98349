package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// eventsProveCommand writes the proof that an event is in a signed checkpoint.
func eventsProveCommand() *cobra.Command {
	var (
		cli        cliDB
		checkpoint int64
	)
	cmd := &cobra.Command{
		Use:   "prove EVENT_ID [flags]",
		Short: "Write a bundle proving an event is in the log a signed checkpoint commits to",
		Long: `prove writes, as JSON on standard output, a bundle that shows an event is in the log a signed
checkpoint commits to — the latest checkpoint, or --checkpoint N: the event exactly as its hash
covers it, its stream's previous hash, its leaf index, the Merkle inclusion path to the
checkpoint's root, and the checkpoint. Whoever holds the bundle and the sealer's public key
checks it with "herald verify-bundle", without the database.

An event no checkpoint covers yet has no proof: wait for the sealer's next checkpoint. The log is
read once up to the checkpoint, in a read-only transaction, and the proof is checked against the
checkpoint before it is written: a log that no longer matches gets an error, not a bundle.

For a whole notification, "herald events export --stream ID --proof" writes every event with
its chain and a bundle for each, in one pass over the log.`,
		Example: `  herald events prove 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e > proof.json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if checkpoint < 0 {
				return fmt.Errorf("--checkpoint %d: want a checkpoint's seq, or 0 for the latest", checkpoint)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			p, err := ledger.Prove(cmd.Context(), pool, args[0], checkpoint)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), wire.NewProofBundle(p))
		},
	}
	cmd.Flags().Int64Var(&checkpoint, "checkpoint", 0, "prove against this checkpoint; 0: the latest")
	markArguments(cmd.Flags(), "checkpoint")
	cli.register(newSettings(cmd))
	return cmd
}

// eventsExportCommand writes a stream's events with their chain and, with --proof, their proofs.
func eventsExportCommand() *cobra.Command {
	var (
		cli       cliDB
		stream    string
		withProof bool
	)
	cmd := &cobra.Command{
		Use:   "export --stream ID [--proof] [flags]",
		Short: "Write a notification's events with their hash chain and, with --proof, proof bundles",
		Long: `export writes, as JSON on standard output, every event of a stream (a notification's id is its
stream's) in version order, each exactly as its hash covers it, with its hash and its stream's
previous hash: the chain, checked link by link before it is written. With --proof it adds a
proof bundle for each event the latest signed checkpoint covers — what "herald events prove"
writes for one event, and GET /api/v1/notifications/{id}/proof answers — and counts the events
no checkpoint covers yet ("unsealed"). "herald verify-bundle export.json --public-key KEY"
checks the file as written, offline: the chain from version 1, and every bundle against its
signed checkpoint and against the event it lists at its place.

This is the way to hand over one notification's history with its proof. --proof reads the
hashes of the log up to the checkpoint once, in a read-only transaction.

  {"stream_id", "events": [{"id", "stream_id", "version", "type", "position", "transaction_id",
   "occurred_at_us", "data", "metadata", "hash", "previous_hash"}],
   "proofs": [bundles, as "herald events prove" writes them], "unsealed"}`,
		Example: `  herald events export --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e --proof > notification.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return fmt.Errorf("--stream: the stream (a notification's id) to export is required")
			}
			if _, err := uuid.Parse(stream); err != nil {
				return fmt.Errorf("--stream %q: not a stream id: %w", stream, err)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			exp, err := ledger.ExportStream(cmd.Context(), pool, stream, withProof)
			if errors.Is(err, ledger.ErrNotFound) {
				return fmt.Errorf("--stream %s: the log has no such stream", stream)
			}
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), wire.NewStreamExport(stream, exp))
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "the stream to export: a notification's id")
	cmd.Flags().BoolVar(&withProof, "proof", false, "add a proof bundle for each event the latest checkpoint covers")
	markArguments(cmd.Flags(), "stream", "proof")
	cli.register(newSettings(cmd))
	return cmd
}

// verifyBundleCommand checks a proof bundle, an export or a notification's proof offline.
func verifyBundleCommand() *cobra.Command {
	var (
		publicKeys []string
		expect     []string
		witness    string
		logID      string
	)
	cmd := &cobra.Command{
		Use:   "verify-bundle FILE --public-key KEY",
		Short: "Check a proof bundle, an export or a notification's proof with the sealer's public key, without the database",
		Long: `verify-bundle checks, on its own, any of the files that carry proofs:

  - a proof bundle ("herald events prove"): the event's contents, chained to its stream's
    previous hash, hash to its hash; the inclusion path leads from it to the checkpoint's root;
    and the checkpoint is signed by the --public-key its key id names. The leaf covers the
    event's place in the log (transaction id and position) as well as its hash, so the position
    printed is proven too.
  - an export ("herald events export --stream ID --proof"): its events are of its stream, run
    from version 1 without a gap, and each hashes, chained to the one before it (previous_hash),
    to its hash; every bundle in it is checked as above and is of the event the export lists at
    its place. It reports how many events are proven (a signed checkpoint covers them) and how
    many are unsealed (chained to the proven ones, not yet signed).
  - a notification's proof (GET /api/v1/notifications/{id}/proof): its bundles are of the
    notification's stream, from version 1, each chained to the one before it, and each checked
    as above.

--public-key repeats: a file proved across a rotation of the sealer's key may hold checkpoints
signed by the old key and by the new one, and each is checked with the key it names; one
signed by a key not given fails, naming the checkpoint and its key id.

After a rotation, a file whose checkpoint the old key signed is only as trustworthy as that
key: whoever holds it can sign a checkpoint with any seq, tree size and root, and offline there
is nothing to hold its seq to. Trust such a file only if its checkpoint is one you kept from
before the rotation. --witness FILE, a checkpoint file as "herald events verify" takes it (the
sealer's HERALD_CHECKPOINT_FILE, or a checkpoint.signed receiver's copy: one checkpoint per
line), requires every checkpoint the file carries to be in it with the same seq and root (and
tree size and log id); --expect SEQ:ROOT (the root in hex; the flag repeats) does the same for a
checkpoint noted by hand. Given both, each checkpoint must be among either, and agree with every
copy of its seq. One that is not fails, naming the checkpoint (field witness) and whether its
seq, its root, its tree size or its log differs. A witness file that cannot be read or holds no
checkpoint is refused before FILE is read. It is then read line by line, once (it may be a pipe:
--witness <(ssh host cat checkpoints.jsonl)), and a file up to the size it had when it was
opened, keeping only the copies of FILE's checkpoints' seqs, however long it is; a last line
without its newline that is not a whole checkpoint (one being written, or cut short) is not
read, and the summary says so. Each line must be a checkpoint signed by a --public-key given
(give every key the file's lines were signed with, a rotation's old and new), or it is refused,
naming the file, the line and the checkpoint's seq. A witness is still worth what the place it
was kept is worth: whoever holds a key can sign a line.

The signature covers the log's id: --log-id requires every checkpoint to be of that log (a
bundle from another log, even signed with the same key, is refused); without it, the log id is
printed for you to compare. FILE "-" reads standard input. It exits 1, naming the event and the
field, when any of it does not hold, and when the file holds no proof at all (nothing in it is
signed).`,
		Example: `  herald verify-bundle proof.json --public-key +skVD5+luKpPda50htpeXNx1RCtn40iTB700eqGxzWI=
  herald events export --stream 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e --proof > notification.json
  herald verify-bundle notification.json --public-key checkpoint.pub --log-id 5b0d6c1e-2f4a-4c83-9e61-7a2d9f0b3c45
  herald verify-bundle proof.json --public-key old-checkpoint.pub --public-key checkpoint.pub --witness /var/lib/herald/checkpoints.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(publicKeys) == 0 {
				return fmt.Errorf("--public-key: the sealer's public key is required")
			}
			keys, err := parsePublicKeys(publicKeys)
			if err != nil {
				return err
			}
			expected, err := parseExpected(expect)
			if err != nil {
				return err
			}
			// A witness file that cannot be read or holds no checkpoint is refused before FILE
			// is read; its lines are read once FILE's checkpoints are known.
			var wf *witnessFile
			if witness != "" {
				if wf, err = openWitness(witness, keys, nil, 0); err != nil {
					return err
				}
				defer wf.Close()
			}
			kept := keptBy(witness, len(expected) > 0)
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			ps, err := wire.ReadProofs(r)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(ps.Proofs) == 0 {
				return fmt.Errorf("%s: the %s holds no proof: nothing in it is signed (export with --proof, or wait for the sealer's next checkpoint)", args[0], ps.Shape)
			}
			// The witness file's lines and the expected checkpoints are one set of kept copies,
			// as in events verify: each checkpoint of FILE must be among them. Only the copies
			// of FILE's checkpoints' seqs are kept, however long the file.
			seqs := make([]int64, len(ps.Proofs))
			for i, p := range ps.Proofs {
				seqs[i] = p.Checkpoint.Seq
			}
			witnessed := ledger.NewWitnessIndex(seqs...)
			if wf != nil {
				for cp, err := range wf.checkpoints() {
					if err != nil {
						return err
					}
					witnessed.Add(cp)
				}
			}
			for _, cp := range expected {
				witnessed.Add(cp)
			}
			if ps.Shape == "bundle" {
				err = ps.Proofs[0].Verify(keys)
			} else {
				err = ledger.VerifyHistory(ps.Stream, ps.Events, ps.Proofs, keys)
			}
			if err != nil {
				return fmt.Errorf("the %s does not verify: %w", ps.Shape, err)
			}
			if ps.Shape == "export" && len(ps.Events)-len(ps.Proofs) != ps.Unsealed {
				return fmt.Errorf("the export does not verify: unsealed: it says %d, but %d of its events have no proof", ps.Unsealed, len(ps.Events)-len(ps.Proofs))
			}
			for _, p := range ps.Proofs {
				if id := uuid.UUID(p.Checkpoint.LogID).String(); logID != "" && !strings.EqualFold(logID, id) {
					return fmt.Errorf("the %s does not verify: --log-id: it is of log %s, not %s", ps.Shape, id, logID)
				}
				if err := witnessed.Check(&p.Checkpoint); err != nil {
					return fmt.Errorf("the %s does not verify: %s: %w", ps.Shape, kept.flags, err)
				}
			}
			w := cmd.OutOrStdout()
			if ps.Shape == "bundle" {
				p := ps.Proofs[0]
				fmt.Fprintf(w, "Event %s (stream %s version %d, position %d, transaction %d) is leaf %d of the %d events checkpoint %d of log %s commits to, signed by key %s on %s.\n",
					uuid.UUID(p.Event.ID), uuid.UUID(p.Event.Stream), p.Event.Version, p.Position, p.TransactionID, p.LeafIndex, p.Checkpoint.TreeSize, p.Checkpoint.Seq,
					uuid.UUID(p.Checkpoint.LogID), p.Checkpoint.KeyID, logTime(p.Checkpoint.CreatedAt))
				if witnessed.Len() > 0 {
					fmt.Fprintf(w, "Checkpoint %d is %s: the seq and root kept outside the log.\n", p.Checkpoint.Seq, kept.as)
				}
				wf.printPartial(w)
				return nil
			}
			fmt.Fprintf(w, "Stream %s: %d events proven, versions 1 to %d, each chained to the one before it and in the log a signed checkpoint commits to:\n",
				ps.Stream, len(ps.Proofs), len(ps.Proofs))
			for _, p := range ps.Proofs {
				fmt.Fprintf(w, "  version %d (%s, position %d): leaf %d of the %d events checkpoint %d of log %s commits to, signed by key %s on %s.\n",
					p.Event.Version, p.Event.Type, p.Position, p.LeafIndex, p.Checkpoint.TreeSize, p.Checkpoint.Seq, uuid.UUID(p.Checkpoint.LogID), p.Checkpoint.KeyID, logTime(p.Checkpoint.CreatedAt))
			}
			switch {
			case ps.Unsealed == 0:
				fmt.Fprintln(w, "0 events unsealed: every event of the stream is proven.")
			case ps.Shape == "export":
				fmt.Fprintf(w, "%d events unsealed: chained to the proven ones, not yet signed (prove them after the sealer's next checkpoint).\n", ps.Unsealed)
			default:
				fmt.Fprintf(w, "%d events unsealed: no checkpoint covers them yet, and this file does not carry them (herald events export --proof does).\n", ps.Unsealed)
			}
			if witnessed.Len() > 0 {
				fmt.Fprintf(w, "Every checkpoint is %s: the seq and root kept outside the log.\n", kept.as)
			}
			wf.printPartial(w)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&publicKeys, "public-key", nil, publicKeyUsage)
	cmd.Flags().StringArrayVar(&expect, "expect", nil, "SEQ:ROOT, a checkpoint's seq and its root in hex kept outside the log (from before a rotation, for a file the old key signed): every checkpoint in the file must be one of these (repeatable)")
	cmd.Flags().StringVar(&witness, "witness", "", "a checkpoint file kept outside the log (HERALD_CHECKPOINT_FILE, or a checkpoint.signed receiver's copy): every checkpoint in FILE must be one of its lines, with the same seq and root; each line must be signed by a --public-key")
	cmd.Flags().StringVar(&logID, "log-id", "", `the id of the log every checkpoint must be of (as "herald checkpoints list -o json" shows it)`)
	markArguments(cmd.Flags(), "public-key", "expect", "witness", "log-id")
	return cmd
}

// keptCopies says where verify-bundle's kept checkpoints came from: the flags, for an error, and
// what a checkpoint found among them is, for the summary.
type keptCopies struct{ flags, as string }

func keptBy(witness string, expect bool) keptCopies {
	switch {
	case witness == "":
		return keptCopies{flags: "--expect", as: "as expected (--expect)"}
	case !expect:
		return keptCopies{flags: "--witness " + witness, as: fmt.Sprintf("as witnessed (--witness %s)", witness)}
	default:
		return keptCopies{flags: "--witness " + witness + ", --expect", as: fmt.Sprintf("as witnessed (--witness %s, --expect)", witness)}
	}
}
