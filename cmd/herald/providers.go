package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/wire"
)

// providersCommand groups the operators' commands on the delivery providers.
func providersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "Show the delivery providers' health: their circuit breakers in every worker",
		Long: `A channel may deliver through an ordered list of providers (--smtp-failover-urls,
--sms-failover-urls): each has a circuit breaker in each worker process, which opens after
--breaker-failures transient failures in a row and passes the provider over while open.

  herald providers status [-o json]   every provider's breaker in every worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(providersStatusCommand())
	return cmd
}

// providersStatusCommand prints the breakers the workers recorded.
func providersStatusCommand() *cobra.Command {
	var (
		cli        cliDB
		staleAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List each provider's circuit breaker in each worker: state, failures in a row, last error",
		Long: `status prints, for each worker process and each provider of a channel with failover URLs,
the state of its circuit breaker: closed (traffic flows), open (the provider is passed over) or
half-open (one trial goes through). A breaker lives in its worker's memory; each worker records
its breakers every --breaker-publish-interval and at each change, and forgets them when it stops.
A row its worker has not recorded for --stale-after is marked stale: that worker stopped without
saying so, or cannot reach the database. A channel without failover URLs has no breaker and
shows no row.`,
		Example: `  herald providers status
  herald providers status -o json`,
		Args: cobra.NoArgs,
	}
	output := registerFormat(cmd.Flags(), formatTable, formatJSON)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if staleAfter <= 0 {
			return fmt.Errorf("--stale-after %s: want more than 0", staleAfter)
		}
		ctx := cmd.Context()
		pool, _, err := cli.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		rows, err := breakers.New(pool).List(ctx, staleAfter)
		if err != nil {
			return err
		}
		list := wire.NewProviderStatusList(rows)
		if *output == formatJSON {
			return writeJSON(cmd.OutOrStdout(), list)
		}
		return writeProviderTable(cmd.OutOrStdout(), list)
	}
	cli.register(newSettings(cmd))
	cmd.Flags().DurationVar(&staleAfter, "stale-after", time.Minute, "mark the rows of a worker not heard from for this long as stale")
	markArguments(cmd.Flags(), "stale-after")
	return cmd
}

// writeProviderTable prints list for people.
func writeProviderTable(w io.Writer, list wire.ProviderStatusList) error {
	if len(list.Providers) == 0 {
		_, err := fmt.Fprintln(w, "No worker has recorded a circuit breaker: no channel has failover URLs, or no worker runs.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "CHANNEL\tPROVIDER\tSTATE\tFAILURES\tSINCE\tPROCESS\tUPDATED\tLAST ERROR")
	for _, p := range list.Providers {
		state := p.State
		if p.Stale {
			state += " (stale)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Channel, p.Provider, state, p.ConsecutiveFailures,
			tableTime(p.ChangedAt), cell(p.Process, 40), tableTime(p.UpdatedAt), orDash(cell(p.LastError, 60)))
	}
	return tw.Flush()
}
