package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/webhooks"
)

// webhooksShowCommand shows one endpoint in full: its settings, its health, its retries pending,
// and every change of it with who made it.
func webhooksShowCommand() *cobra.Command {
	cmd := endpointCommand("show ID", "Show a webhook endpoint, its health and its history (never its secret)", cobra.ExactArgs(1),
		endpointOptions{formats: []format{formatTable, formatJSON}},
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, _ string, output format) error {
			e, err := store.Get(ctx, args[0])
			if err != nil {
				return endpointError(err)
			}
			pending, err := store.Pending(ctx, e.ID)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, webhooks.WireEndpoint(e, &pending))
			}
			history, err := store.History(ctx, e.ID)
			if err != nil {
				return err
			}
			if err := writeEndpointFields(w, e, &pending); err != nil {
				return err
			}
			return writeStreamHistory(w, history)
		})
	cmd.Long = `show prints a webhook endpoint: its URL, event types, whether it is enabled (and why not),
its place in the log, its health (failing since, last success), the deliveries waiting for a
retry, and its history: every change of it, when, by whom. -o json prints the endpoint as
GET /api/v1/webhooks/{id} answers; its history is GET /api/v1/webhooks/{id}/events, or
herald events list --stream ID.`
	return cmd
}

// writeEndpointFields prints e as a column of labelled values; pending, when known, too.
func writeEndpointFields(w io.Writer, e webhooks.Endpoint, pending *int64) error {
	tw := newTable(w)
	row := func(label, value string) { fmt.Fprintf(tw, "%s\t%s\n", label, value) }
	row("ID", e.ID)
	row("URL", cell(e.URL, 0))
	row("Description", orDash(cell(e.Description, 0)))
	row("Events", eventsWords(e.EventTypes))
	row("Enabled", enabledWords(e))
	row("Version", fmt.Sprint(e.Version))
	row("Created", tableTime(e.CreatedAt)+" by "+orDash(cell(e.CreatedBy, 0)))
	row("Updated", tableTime(e.UpdatedAt))
	if e.PreviousSecretUntil != nil {
		row("Old secret signs until", tableTime(*e.PreviousSecretUntil))
	}
	row("Position", fmt.Sprint(e.Position))
	if e.TakesCheckpoints() {
		row("Checkpoint seq", fmt.Sprint(e.CheckpointSeq))
	}
	row("Failing since", timeOrDash(e.FailingSince))
	row("Last success", timeOrDash(e.LastSuccessAt))
	if pending != nil {
		row("Retries pending", fmt.Sprint(*pending))
	}
	return tw.Flush()
}

// writeStreamHistory prints a stream of the log (an endpoint's, an entry of the suppression list's): when, who, what.
func writeStreamHistory(w io.Writer, history []events.Recorded) error {
	fmt.Fprintln(w, "\nHistory:")
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tVERSION\tACTOR\tEVENT\tWHAT")
	for _, r := range history {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", logTime(r.Time), r.Version, orDash(cell(r.Metadata.Actor, 40)), r.Type,
			orDash(cell(eventsDataSummary(r), 120)))
	}
	return tw.Flush()
}

// enabledWords says whether e is enabled, and if not why.
func enabledWords(e webhooks.Endpoint) string {
	switch {
	case e.Enabled:
		return "yes"
	case e.DisabledReason != "":
		return "no: " + cell(e.DisabledReason, 80)
	}
	return "no"
}

// timeOrDash renders an instant that may be unset.
func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return tableTime(*t)
}
