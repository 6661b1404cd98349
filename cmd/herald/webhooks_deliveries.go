package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/webhooks"
)

// webhooksDeliveriesCommand lists the requests Herald made to an endpoint, newest first.
func webhooksDeliveriesCommand() *cobra.Command {
	var (
		failed bool
		limit  int
		before int64
	)
	cmd := endpointCommand("deliveries ID [--failed] [--limit N] [--before ATTEMPT]", "List the requests made to a webhook endpoint, newest first",
		cobra.ExactArgs(1), endpointOptions{formats: []format{formatTable, formatJSON, formatJSONL}},
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, _ string, output format) error {
			list, next, err := store.Attempts(ctx, args[0], webhooks.AttemptFilter{Failed: failed, Limit: limit, Before: before})
			if err != nil {
				return endpointError(err)
			}
			return writeAttempts(cmd.OutOrStdout(), output, args[0], list, next)
		})
	cmd.Long = `deliveries lists the requests Herald made to a webhook endpoint, newest first: live
deliveries, retries and replays, each with the event it carried, the answer (status code, the
first KiB of its body) or the error, and how long it took. A page holds --limit of them; the
next page is --before the last one's id (the table ends by saying so; -o json has next_before).`
	fs := cmd.Flags()
	fs.BoolVar(&failed, "failed", false, "only the requests that failed")
	fs.IntVar(&limit, "limit", 100, "the most requests listed, 1 to "+strconv.Itoa(webhooks.MaxAttemptsPage))
	fs.Int64Var(&before, "before", 0, "list the requests older than the one with this id: the next page")
	markArguments(fs, "failed", "limit", "before")
	return cmd
}

// writeAttempts prints a page of endpoint id's attempts, continued before next (0: the last).
func writeAttempts(w io.Writer, output format, id string, list []webhooks.Attempt, next int64) error {
	switch output {
	case formatJSON:
		return writeJSON(w, webhooks.WireAttempts(list, next))
	case formatJSONL:
		for _, a := range list {
			if err := writeJSONLine(w, webhooks.WireAttempt(a)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "No deliveries.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tTIME\tTRIGGER\tATTEMPT\tEVENT\tPOSITION\tNOTIFICATION\tSTATUS\tDURATION\tERROR")
	for _, a := range list {
		status := "-"
		if a.StatusCode != 0 {
			status = strconv.Itoa(a.StatusCode)
		}
		if a.Succeeded {
			status += " ok"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", a.ID, logTime(a.At), a.Trigger, a.Attempt, a.EventType,
			a.EventPosition, a.NotificationID, status, a.Duration.Round(100_000), orDash(cell(a.Error, 80)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next > 0 {
		_, err := fmt.Fprintf(w, "\nMore: herald webhooks deliveries %s --before %d\n", id, next)
		return err
	}
	return nil
}
