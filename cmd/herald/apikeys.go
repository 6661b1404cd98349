package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/wire"
)

// apikeysCommand groups the commands that manage the keys API clients authenticate with.
func apikeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikeys",
		Short: "Create, list and revoke the API keys clients authenticate with",
		Long: `Every API endpoint but /healthz, /readyz and /metrics needs an API key, sent as
"Authorization: Bearer <key>" (or "X-API-Key: <key>"). A key carries scopes: send (POST
notifications), read (status, history, events, listings) and operate (the poison queue, projection
rebuilds, webhook endpoints and the suppression list over HTTP). Only a hash of each key is stored: the key itself is shown once, when it is created.`,
	}
	cmd.AddCommand(apikeysCreateCommand(), apikeysListCommand(), apikeysRevokeCommand())
	return cmd
}

// keyCommand builds an apikeys subcommand: database and log settings, -o, and run with the store.
func keyCommand(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string, store *apikeys.Store, output format) error) *cobra.Command {
	var (
		cli    cliDB
		output *format
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			return run(cmd, args, apikeys.NewStore(pool), *output)
		},
	}
	cli.register(newSettings(cmd))
	output = registerFormat(cmd.Flags(), formatTable, formatJSON)
	return cmd
}

// apikeysCreateCommand makes a key and prints it the one time it can be seen.
func apikeysCreateCommand() *cobra.Command {
	var scopes, createdBy string
	cmd := keyCommand("create --name NAME --scopes send,read,operate", "Create an API key and print it, once", cobra.NoArgs,
		func(cmd *cobra.Command, _ []string, store *apikeys.Store, output format) error {
			name, _ := cmd.Flags().GetString("name")
			sc, err := herald.ParseScopes(scopes)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			if createdBy == "" {
				createdBy, _ = poisonActor("")
			}
			k, token, err := store.Create(cmd.Context(), name, sc, createdBy)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, wire.NewAPIKey(k, token))
			}
			fmt.Fprintf(w, "Created API key %q (%s) with scopes %s.\n", k.Name, k.ID, strings.Join(wire.NewAPIKey(k, "").Scopes, ","))
			fmt.Fprintf(w, "Keep it now; it is not stored and cannot be shown again:\n\n%s\n", token)
			return nil
		})
	cmd.Long = `create makes an API key with a name and scopes (send, read, operate, admin) and prints it once.
Use it as "Authorization: Bearer <key>".`
	cmd.Flags().String("name", "", "a name for the key, unique: who or what uses it")
	cmd.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes: send, read, operate, admin (admin: manage API keys in the console)")
	cmd.Flags().StringVar(&createdBy, "created-by", "", "who creates the key, for the record; empty: the OS user")
	markArguments(cmd.Flags(), "name", "scopes", "created-by")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("scopes")
	return cmd
}

// apikeysListCommand lists the keys by name, prefix and scopes.
func apikeysListCommand() *cobra.Command {
	var all bool
	cmd := keyCommand("list", "List the API keys (never the keys themselves)", cobra.NoArgs,
		func(cmd *cobra.Command, _ []string, store *apikeys.Store, output format) error {
			keys, err := store.List(cmd.Context(), all)
			if err != nil {
				return err
			}
			return writeKeys(cmd.OutOrStdout(), output, keys)
		})
	cmd.Flags().BoolVar(&all, "all", false, "include revoked keys")
	markArguments(cmd.Flags(), "all")
	return cmd
}

// apikeysRevokeCommand stops a key from working.
func apikeysRevokeCommand() *cobra.Command {
	cmd := keyCommand("revoke NAME|ID", "Revoke an API key: it stops working within seconds", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string, store *apikeys.Store, output format) error {
			k, err := store.Revoke(cmd.Context(), args[0])
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			if output == formatJSON {
				return writeJSON(cmd.OutOrStdout(), wire.NewAPIKey(k, ""))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API key %q (%s); running processes refuse it within %s.\n", k.Name, k.ID, apikeys.CacheFor)
			return nil
		})
	return cmd
}

// writeKeys prints keys in output, never the keys themselves.
func writeKeys(w io.Writer, output format, keys []apikeys.Key) error {
	if output == formatJSON {
		out := make([]wire.APIKey, 0, len(keys))
		for _, k := range keys {
			out = append(out, wire.NewAPIKey(k, ""))
		}
		return writeJSON(w, out)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tID\tPREFIX\tSCOPES\tCREATED\tCREATED BY\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\t%s\n", k.Name, k.ID, k.Prefix, strings.Join(wire.NewAPIKey(k, "").Scopes, ","),
			k.CreatedAt.UTC().Format(time.RFC3339), k.CreatedBy, revoked)
	}
	return tw.Flush()
}
