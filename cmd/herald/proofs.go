package main

import (
	"encoding/json"
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
no checkpoint covers yet ("unsealed"). Each bundle is checked on its own with
"herald verify-bundle" (for instance: jq '.proofs[0]' export.json | herald verify-bundle - --public-key KEY).

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

// verifyBundleCommand checks a proof bundle offline.
func verifyBundleCommand() *cobra.Command {
	var publicKey, logID string
	cmd := &cobra.Command{
		Use:   "verify-bundle FILE --public-key KEY",
		Short: "Check a bundle from \"herald events prove\" with the sealer's public key, without the database",
		Long: `verify-bundle checks a proof bundle ("herald events prove") on its own: the event's contents,
chained to its stream's previous hash, hash to its hash; the inclusion path leads from it to the
checkpoint's root; and the checkpoint is signed by --public-key. The leaf covers the event's
place in the log (transaction id and position) as well as its hash, so the position printed is
proven too. The signature covers the log's id: --log-id requires the bundle to be of that log
(a bundle from another log, even signed with the same key, is refused); without it, the log id
is printed for you to compare. FILE "-" reads standard input. It exits 1, naming the field, when
any of it does not hold.`,
		Example: `  herald verify-bundle proof.json --public-key +skVD5+luKpPda50htpeXNx1RCtn40iTB700eqGxzWI=`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if publicKey == "" {
				return fmt.Errorf("--public-key: the sealer's public key is required")
			}
			pub, err := ledger.ParsePublicKey(publicKey)
			if err != nil {
				return fmt.Errorf("--public-key: %w", err)
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			var b wire.ProofBundle
			dec := json.NewDecoder(r)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&b); err != nil {
				return fmt.Errorf("%s: not a proof bundle: %w", args[0], err)
			}
			p, err := b.Proof()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := p.Verify(pub); err != nil {
				return fmt.Errorf("the bundle does not verify: %w", err)
			}
			if logID != "" && !strings.EqualFold(logID, b.Checkpoint.LogID) {
				return fmt.Errorf("the bundle does not verify: --log-id: it is of log %s, not %s", b.Checkpoint.LogID, logID)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Event %s (stream %s version %d, position %d, transaction %d) is leaf %d of the %d events checkpoint %d of log %s commits to, signed by key %s on %s.\n",
				b.Event.ID, b.Event.StreamID, b.Event.Version, b.Event.Position, b.Event.TransactionID, p.LeafIndex, p.Checkpoint.TreeSize, p.Checkpoint.Seq,
				b.Checkpoint.LogID, p.Checkpoint.KeyID, logTime(p.Checkpoint.CreatedAt))
			return nil
		},
	}
	cmd.Flags().StringVar(&publicKey, "public-key", "", `the sealer's public key: its 32 bytes in base64 or hex (as "herald keys generate" prints it), or a file holding it`)
	cmd.Flags().StringVar(&logID, "log-id", "", `the id of the log the bundle must be of (as "herald checkpoints list -o json" shows it)`)
	markArguments(cmd.Flags(), "public-key", "log-id")
	return cmd
}
