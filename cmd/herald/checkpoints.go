package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// keysCommand groups the commands that manage the key that signs the log's checkpoints.
func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make the Ed25519 key that signs the event log's checkpoints",
		Long: `The sealer (run by "herald projector" and "herald all" when --checkpoint-key is set) signs
each checkpoint of the event log with an Ed25519 private key that only it reads, from a file:
the database never sees it. An auditor checks the signatures with the public key
("herald events verify --public-key").`,
	}
	cmd.AddCommand(keysGenerateCommand())
	return cmd
}

// keysGenerateCommand writes a new private key and prints its public half.
func keysGenerateCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate --out FILE",
		Short: "Write a new checkpoint signing key to a file and print its public key",
		Long: `generate writes a new Ed25519 private key to --out (PEM, PKCS #8, mode 0600; an existing file is
never overwritten) and prints its public key — its 32 bytes in standard base64 — and its key id
(the first 8 bytes of the public key's SHA-256, in hex), which each checkpoint names. Give the
file to the sealer (HERALD_CHECKPOINT_KEY) and the public key to whoever verifies.`,
		Example: `  herald keys generate --out /etc/herald/checkpoint.key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out: the file to write the private key to is required")
			}
			pub, err := ledger.GenerateKeyFile(out)
			if err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote the private key to %s.\nPublic key (base64): %s\nKey id: %s\n",
				out, ledger.EncodePublicKey(pub), ledger.KeyID(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the private key to; it must not exist")
	markArguments(cmd.Flags(), "out")
	return cmd
}

// checkpointsCommand groups the commands that read the log's signed checkpoints.
func checkpointsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoints",
		Short: "List the event log's signed checkpoints",
		Long: `A checkpoint commits to the event log up to a point, in the order its consumers read it: the
Merkle root of the hashes of every event so far, their count, the last one's transaction id and
position, and the time, signed with the sealer's Ed25519 key. "herald events verify" checks the
log against them.`,
	}
	cmd.AddCommand(checkpointsListCommand())
	return cmd
}

// checkpointsListCommand lists the checkpoints.
func checkpointsListCommand() *cobra.Command {
	var (
		cli    cliDB
		limit  int
		output *format
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the checkpoints, oldest first",
		Long: `list prints the checkpoints, oldest first; --limit N keeps the last N. With -o json, each is
{"log_id", "seq", "tree_size", "last_transaction_id", "last_position", "root" (hex), "key_id",
"signature" (base64), "created_at", "frontier" (hex hashes)}: the shape of each line of
HERALD_CHECKPOINT_FILE. log_id is the log's identity, signed into each checkpoint.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			cps, err := ledger.List(cmd.Context(), pool, limit)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if *output == formatJSON {
				out := make([]wire.Checkpoint, 0, len(cps))
				for _, cp := range cps {
					out = append(out, wire.NewCheckpoint(cp))
				}
				return writeJSON(w, out)
			}
			t := newTable(w)
			fmt.Fprintln(t, "SEQ\tCREATED\tTREE SIZE\tLAST POSITION\tROOT\tKEY ID")
			for _, cp := range cps {
				fmt.Fprintf(t, "%d\t%s\t%d\t%d\t%x\t%s\n", cp.Seq, tableTime(cp.CreatedAt), cp.TreeSize, cp.LastPosition, cp.Root[:], cp.KeyID)
			}
			return t.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the last N checkpoints; 0: all")
	output = registerFormat(cmd.Flags(), formatTable, formatJSON)
	markArguments(cmd.Flags(), "limit")
	cli.register(newSettings(cmd))
	return cmd
}
