package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// poisonListLong is the help of poison list.
const poisonListLong = `list shows the messages in the poison queue, in queue order, with their notifications' state
from the event log: channel, recipient, why it failed (permanent_error or attempts_exhausted, and
the last error), how many attempts were made and when it failed. A message whose notification is
no longer failed is stale: left over from a requeue or a discard whose removal did not happen, or
a command RabbitMQ dead-lettered while its notification was still under way (a requeue sends
that one again). The messages stay in the queue.

Without --limit, list walks the whole queue once and prints it as it goes, 50 messages at a
time. With --limit N it prints one page of at most N messages and, when there are more, the
cursor of the next page; --cursor C prints the page after the one that gave C (its JSON is the
API's GET /api/v1/poison). Memory stays bounded by the page, whatever the queue's depth; a page
takes longer the further into the queue it is, since AMQP cannot seek.`

// poisonListFlags are the flags of poison list: which messages, and how to print them.
type poisonListFlags struct {
	cfg     poisonConfig
	channel channelFilter
	limit   int
	cursor  string
}

// poisonListCommand lets an operator see what is parked and why.
func poisonListCommand() *cobra.Command {
	var f poisonListFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the parked notifications: id, channel, recipient, reason, attempts, when they failed",
		Long:  poisonListLong,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.run(cmd) },
	}
	f.cfg.register(newSettings(cmd))
	f.channel.register(cmd.Flags(), "list only the notifications of this channel: email or sms")
	cmd.Flags().IntVar(&f.limit, "limit", 0, fmt.Sprintf("print one page of at most this many messages (1 to %d; 0: the whole queue)", handlers.MaxParkedPageSize))
	cmd.Flags().StringVar(&f.cursor, "cursor", "", "print the page after the one that gave this cursor")
	markArguments(cmd.Flags(), "limit", "cursor")
	return cmd
}

// run checks the flags, then prints the whole queue or the page asked for.
func (f poisonListFlags) run(cmd *cobra.Command) error {
	if err := f.cfg.validate(); err != nil {
		return err
	}
	c, err := f.channel.parse()
	if err != nil {
		return err
	}
	if f.limit < 0 || f.limit > handlers.MaxParkedPageSize {
		return fmt.Errorf("--limit %d: want 1 to %d, or 0 for the whole queue", f.limit, handlers.MaxParkedPageSize)
	}
	op, done, err := f.cfg.operator(cmd.Context())
	if err != nil {
		return err
	}
	defer done()
	w, output := cmd.OutOrStdout(), *f.cfg.output
	if f.limit == 0 && f.cursor == "" {
		return streamParked(cmd.Context(), w, output, op, c)
	}
	page, err := op.ParkedPage(cmd.Context(), handlers.ParkedQuery{Channel: c, Limit: f.limit, Cursor: f.cursor})
	if err != nil {
		return cliError(err, fieldsAsWords)
	}
	if output == formatJSON {
		return writeJSON(w, wire.NewParkedPage(page))
	}
	if err := printParked(w, page.Parked, true); err != nil {
		return err
	}
	if page.Next != "" {
		_, err = fmt.Fprintf(w, "\nMore are parked: --cursor %s\n", page.Next)
	}
	return err
}

// streamParked prints the whole poison queue in one walk, a page at a time, holding no more than
// a page. Its JSON is the shape of one page that holds them all.
func streamParked(ctx context.Context, w io.Writer, output format, op *handlers.Operator, c herald.Channel) error {
	first, listed := true, false
	if output == formatJSON {
		if _, err := io.WriteString(w, "{\n  \"parked\": ["); err != nil {
			return err
		}
	}
	err := op.WalkParked(ctx, c, handlers.DefaultParkedPageSize, func(batch []handlers.Parked) error {
		listed = listed || len(batch) > 0
		if output != formatJSON {
			err := printParked(w, batch, first)
			first = false
			return err
		}
		return writeParkedElements(w, batch, &first)
	})
	if err != nil {
		return cliError(err, fieldsAsWords)
	}
	switch {
	case output == formatJSON && listed:
		_, err = io.WriteString(w, "\n  ]\n}\n")
	case output == formatJSON:
		_, err = io.WriteString(w, "]\n}\n")
	case !listed:
		_, err = fmt.Fprintln(w, "Nothing is parked.")
	}
	return err
}

// writeParkedElements writes batch as elements of the page's "parked" array, in the API's shape,
// indented as writeJSON indents a page; first says whether none was written before.
func writeParkedElements(w io.Writer, batch []handlers.Parked, first *bool) error {
	for _, p := range wire.NewParkedPage(handlers.ParkedPage{Parked: batch}).Parked {
		sep := ",\n    "
		if *first {
			sep, *first = "\n    ", false
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if err := encodeJSON(w, p, "    ", "  "); err != nil {
			return err
		}
	}
	return nil
}

// printParked prints parked messages as a table, with its header when header is set.
func printParked(w io.Writer, parked []handlers.Parked, header bool) error {
	if len(parked) == 0 {
		if !header {
			return nil
		}
		_, err := fmt.Fprintln(w, "Nothing is parked.")
		return err
	}
	tw := newTable(w)
	if header {
		fmt.Fprintln(tw, "ID\tCHANNEL\tRECIPIENT\tREASON\tATTEMPTS\tFAILED AT\tERROR\tNOTE")
	}
	for _, p := range parked {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			cell(orDash(p.Message.NotificationID), 0), cell(orDash(string(p.Channel())), 0), cell(orDash(p.Notification.Recipient), 0),
			cell(orDash(p.FailReason), 0), p.Notification.Attempts, tableTime(p.FailedAt), cell(orDash(p.FailError), 60), parkedNote(p))
	}
	return tw.Flush()
}

// parkedNote says what is unusual about a parked message.
func parkedNote(p handlers.Parked) string {
	switch {
	case p.Message.Unreadable != "":
		return "unreadable: " + cell(p.Message.Unreadable, 60)
	case p.Notification.Version == 0:
		return "unknown notification"
	case p.Stale && p.Notification.Status != herald.StatusFailed:
		return "stale: now " + string(p.Notification.Status)
	case p.Stale:
		return "stale: discarded"
	}
	return "-"
}
