package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
)

func apikeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikeys",
		Short: "Create, list and revoke the API keys clients authenticate with",
		Long: `Every API endpoint but /healthz, /readyz and /metrics needs an API key, sent as
"Authorization: Bearer <key>" (or "X-API-Key: <key>"). A key carries scopes: send (POST
notifications), read (status, history, events, listings) and operate (the poison queue over HTTP).
Only a hash of each key is stored: the key itself is shown once, when it is created.`,
	}
	cmd.AddCommand(apikeysCreateCommand(), apikeysListCommand(), apikeysRevokeCommand())
	return cmd
}

// keyCommand builds an apikeys subcommand: database and log settings, -o, and run with the store.
func keyCommand(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string, store *apikeys.Store, output string) error) (*cobra.Command, *string) {
	var (
		db     dbConfig
		logs   logConfig
		output string
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			logger, err := logs.logger()
			if err != nil {
				return err
			}
			pool, err := db.cliPool(cmd.Context(), logger)
			if err != nil {
				return err
			}
			defer pool.Close()
			return run(cmd, args, apikeys.NewStore(pool), output)
		},
	}
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	markArguments(cmd.Flags(), "output")
	return cmd, &output
}

type keyJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Token     string     `json:"token,omitempty"`
}

func toKeyJSON(k apikeys.Key, token string) keyJSON {
	out := keyJSON{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt.UTC(), CreatedBy: k.CreatedBy, RevokedAt: k.RevokedAt, Token: token}
	for _, s := range k.Scopes {
		out.Scopes = append(out.Scopes, string(s))
	}
	return out
}

func apikeysCreateCommand() *cobra.Command {
	var scopes, createdBy string
	cmd, _ := keyCommand("create --name NAME --scopes send,read,operate", "Create an API key and print it, once", cobra.NoArgs,
		func(cmd *cobra.Command, _ []string, store *apikeys.Store, output string) error {
			name, _ := cmd.Flags().GetString("name")
			sc, err := herald.ParseScopes(scopes)
			if err != nil {
				return errors.New(describe(err))
			}
			if createdBy == "" {
				createdBy, _ = poisonActor("")
			}
			k, token, err := store.Create(cmd.Context(), name, sc, createdBy)
			if err != nil {
				return errors.New(describe(err))
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return writeJSONTo(w, toKeyJSON(k, token))
			}
			fmt.Fprintf(w, "Created API key %q (%s) with scopes %s.\n", k.Name, k.ID, strings.Join(toKeyJSON(k, "").Scopes, ","))
			fmt.Fprintf(w, "Keep it now; it is not stored and cannot be shown again:\n\n%s\n", token)
			return nil
		})
	cmd.Long = `create makes an API key with a name and scopes (send, read, operate) and prints it once.
Use it as "Authorization: Bearer <key>".`
	cmd.Flags().String("name", "", "a name for the key, unique: who or what uses it")
	cmd.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes: send, read, operate")
	cmd.Flags().StringVar(&createdBy, "created-by", "", "who creates the key, for the record; empty: the OS user")
	markArguments(cmd.Flags(), "name", "scopes", "created-by")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("scopes")
	return cmd
}

func apikeysListCommand() *cobra.Command {
	var all bool
	cmd, _ := keyCommand("list", "List the API keys (never the keys themselves)", cobra.NoArgs,
		func(cmd *cobra.Command, _ []string, store *apikeys.Store, output string) error {
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

func apikeysRevokeCommand() *cobra.Command {
	cmd, _ := keyCommand("revoke NAME|ID", "Revoke an API key: it stops working within seconds", cobra.ExactArgs(1),
		func(cmd *cobra.Command, args []string, store *apikeys.Store, output string) error {
			k, err := store.Revoke(cmd.Context(), args[0])
			if err != nil {
				return errors.New(describe(err))
			}
			if output == "json" {
				return writeJSONTo(cmd.OutOrStdout(), toKeyJSON(k, ""))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API key %q (%s); running processes refuse it within %s.\n", k.Name, k.ID, apikeys.CacheFor)
			return nil
		})
	return cmd
}

func writeKeys(w io.Writer, output string, keys []apikeys.Key) error {
	if output == "json" {
		out := []keyJSON{}
		for _, k := range keys {
			out = append(out, toKeyJSON(k, ""))
		}
		return writeJSONTo(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPREFIX\tSCOPES\tCREATED\tCREATED BY\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\t%s\n", k.Name, k.ID, k.Prefix, strings.Join(toKeyJSON(k, "").Scopes, ","),
			k.CreatedAt.UTC().Format(time.RFC3339), k.CreatedBy, revoked)
	}
	return tw.Flush()
}

// describe renders a *herald.Error with its fields for the command line.
func describe(err error) string {
	msg := herald.ErrorMessage(err)
	if herald.ErrorCode(err) == herald.EINTERNAL {
		return err.Error()
	}
	for k, v := range herald.ErrorFields(err) {
		msg += fmt.Sprintf("; %s %s", k, v)
	}
	return msg
}
