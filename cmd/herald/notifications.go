package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// notificationsCommand groups the commands that read notifications as the API serves them (from
// the read models) and cancel them, for an operator with a shell but no API key.
func notificationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notifications",
		Short: "Show a notification's status and history as the API serves them, or cancel it",
		Long: `notifications reads the status and history read models, as the API's GET
/api/v1/notifications/{id}/status and /history do, from the database directly: for an operator
with a shell on the machine but no API key. "herald events replay --stream ID" answers the same
from the event log, as of an instant. "cancel" calls off notifications that have not gone out,
as POST /api/v1/notifications/{id}/cancel does.`,
	}
	cmd.AddCommand(notificationsShowCommand(), notificationsCancelCommand())
	return cmd
}

// notificationsShowCommand prints one notification's status and history: the API's answers,
// side by side.
func notificationsShowCommand() *cobra.Command {
	var (
		cli    cliDB
		output *format
	)
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a notification's status and history",
		Long: `show prints the notification ID's status and its history, oldest event first.
  table   the status, then the history as a table
  json    {"notification": {...}, "history": [...]}, indented: the notification is the API's
          answer to GET /api/v1/notifications/{id}/status, the history the entries of its
          answer to GET /api/v1/notifications/{id}/history
  jsonl   the same object on one line

A notification the projector has not reached yet is folded from the event log, as the API does.`,
		Example: `  herald notifications show 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := handlers.ParseID(args[0])
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			reader := projections.NewReader(pool, events.NewLog(pool))
			n, err := reader.Status(cmd.Context(), id)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			history, err := reader.History(cmd.Context(), id)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			return writeNotification(cmd.OutOrStdout(), *output, n, history)
		},
	}
	cli.register(newSettings(cmd))
	output = registerFormat(cmd.Flags(), formatTable, formatJSONL, formatJSON)
	return cmd
}

// shownNotification is what notifications show prints for scripts.
type shownNotification struct {
	Notification wire.Notification   `json:"notification"`
	History      []wire.HistoryEntry `json:"history"`
}

// writeNotification prints n and its history in f.
func writeNotification(w io.Writer, f format, n herald.Notification, history []herald.HistoryEntry) error {
	out := shownNotification{Notification: wire.NewNotification(n), History: wire.NewHistoryEntries(history)}
	switch f {
	case formatJSON:
		return writeJSON(w, out)
	case formatJSONL:
		return writeJSONLine(w, out)
	}
	return printNotification(w, n, time.Time{}, history)
}

// printNotification prints for people a notification's state, as name and value, then its
// history as a table; asOf, when set, is the instant the state was replayed to.
func printNotification(w io.Writer, n herald.Notification, asOf time.Time, history []herald.HistoryEntry) error {
	buf := bufio.NewWriter(w)
	tw := newTable(buf)
	fmt.Fprintf(tw, "notification\t%s\n", n.ID)
	if !asOf.IsZero() {
		fmt.Fprintf(tw, "as of\t%s\n", logTime(asOf))
	}
	fmt.Fprintf(tw, "type\t%s\n", n.Channel)
	fmt.Fprintf(tw, "recipient\t%s\n", cell(n.Recipient, 200))
	fmt.Fprintf(tw, "status\t%s\n", n.Status)
	if !n.SendAt.IsZero() {
		fmt.Fprintf(tw, "send at\t%s\n", logTime(n.SendAt))
	}
	fmt.Fprintf(tw, "attempts\t%d\n", n.Attempts)
	fmt.Fprintf(tw, "last error\t%s\n", cell(orDash(n.LastError), 200))
	fmt.Fprintf(tw, "provider\t%s\n", cell(orDash(n.Provider), 100))
	if n.ProviderMessageID != "" {
		fmt.Fprintf(tw, "provider message id\t%s\n", cell(n.ProviderMessageID, 200))
	}
	if n.Position > 0 {
		fmt.Fprintf(tw, "version\t%d (position %d)\n", n.Version, n.Position)
	} else {
		fmt.Fprintf(tw, "version\t%d\n", n.Version)
	}
	fmt.Fprintf(tw, "created\t%s\n", logTime(n.CreatedAt))
	fmt.Fprintf(tw, "updated\t%s\n", logTime(n.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(buf)
	tw = newTable(buf)
	fmt.Fprint(tw, "VERSION\tAT\tEVENT\tSTATUS\tATTEMPT\tACTOR\tDETAIL\n")
	for _, h := range history {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Version, logTime(h.At), h.Event, h.Status, attemptCell(h.Attempt),
			cell(orDash(h.Actor), 40), cell(historyDetail(h), 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return buf.Flush()
}

// attemptCell is an attempt's number, or "-" for an event that belongs to no attempt.
func attemptCell(attempt int) string {
	if attempt > 0 {
		return fmt.Sprint(attempt)
	}
	return "-"
}

// historyDetail says in one cell what a history entry adds to its event and status.
func historyDetail(h herald.HistoryEntry) string {
	var parts []string
	if h.Template != "" {
		parts = append(parts, "from template "+h.Template)
	}
	if h.Provider != "" {
		parts = append(parts, "via "+h.Provider)
	}
	if h.ProviderMessageID != "" {
		parts = append(parts, "id "+h.ProviderMessageID)
	}
	if h.Reason != "" {
		parts = append(parts, "reason "+h.Reason)
	}
	if h.Error != "" {
		parts = append(parts, "error: "+h.Error)
	}
	return orDash(strings.Join(parts, ", "))
}
