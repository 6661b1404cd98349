package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

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
checkpoint before it is written: a log that no longer matches gets an error, not a bundle.`,
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
