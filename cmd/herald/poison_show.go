package main

import (
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// poisonShowCommand lets an operator read one parked message whole, beside the history of its
// notification, before deciding what to do with it.
func poisonShowCommand() *cobra.Command {
	var cfg poisonConfig
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a notification's parked message and its whole history",
		Long: `show prints the parked message of the notification ID — its headers, among them why it was
parked, and its body — and the notification's state and whole history from the event log. A
notification that is not parked is shown too, with no message.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			id, err := handlers.ParseID(args[0])
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			op, done, err := cfg.operator(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			d, err := op.Show(cmd.Context(), id)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			if *cfg.output == formatJSON {
				return writeJSON(cmd.OutOrStdout(), wire.NewParkedDetail(id, d))
			}
			return printParkedDetail(cmd.OutOrStdout(), id, d)
		},
	}
	cfg.register(newSettings(cmd))
	return cmd
}

// printParkedDetail prints for people the notification id: its state, its parked messages
// whole, and its history.
func printParkedDetail(w io.Writer, id string, d handlers.ParkedDetail) error {
	p := &printer{w: w}
	printParkedNotification(p, id, d)
	p.printf("\nParked messages: %d\n", len(d.Messages))
	for i, m := range d.Messages {
		printParkedMessage(p, i, len(d.Messages), m)
	}
	p.printf("\nHistory:\n")
	if p.err != nil {
		return p.err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  VERSION\tAT\tEVENT\tSTATUS\tATTEMPT\tACTOR\tREASON\tERROR")
	for _, h := range d.History {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Version, tableTime(h.At), h.Event, h.Status, attemptCell(h.Attempt),
			cell(orDash(h.Actor), 0), cell(orDash(h.Reason), 0), cell(orDash(h.Error), 0))
	}
	return tw.Flush()
}

// printParkedNotification prints the state of a parked message's notification, as the log has it.
func printParkedNotification(p *printer, id string, d handlers.ParkedDetail) {
	n := d.Notification
	p.printf("Notification %s\n", id)
	if n.Version == 0 {
		p.printf("  not in the event log\n")
		return
	}
	p.printf("  channel:    %s\n  recipient:  %s\n  status:     %s after %d attempt(s)\n", n.Channel, n.Recipient, n.Status, n.Attempts)
	if n.LastError != "" {
		p.printf("  last error: %s\n", n.LastError)
	}
	p.printf("  created:    %s\n  updated:    %s\n", tableTime(n.CreatedAt), tableTime(n.UpdatedAt))
}

// printParkedMessage prints the i-th of n parked messages whole: what AMQP carried and why it
// was parked.
func printParkedMessage(p *printer, i, n int, pm handlers.Parked) {
	m := pm.Message
	stale := ""
	if pm.Stale {
		stale = " (stale)"
	}
	p.printf("\n  message %d of %d%s\n", i+1, n, stale)
	p.printf("    message id:      %s\n", cell(orDash(m.MessageID), 0))
	p.printf("    correlation id:  %s\n", cell(orDash(m.CorrelationID), 0))
	p.printf("    parked because:  %s\n", cell(orDash(m.Reason), 0))
	p.printf("    queue, handler:  %s, %s\n", cell(orDash(m.Queue), 0), cell(orDash(m.Handler), 0))
	p.printf("    deliveries:      %d\n", m.Deliveries)
	if m.Unreadable != "" {
		p.printf("    unreadable:      %s\n", m.Unreadable)
	}
	p.printf("    headers:\n")
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		p.printf("      %s: %s\n", k, m.Headers[k])
	}
	p.printf("    body: %s\n", m.Body)
}
