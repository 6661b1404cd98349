package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/wire"
)

func poisonCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "poison",
		Short: "Inspect and re-drive the poison queue",
		Long: `poison works the commands the workers parked in the poison_notifications queue: those of
notifications that failed for good (a permanent error, or their attempts ran out).

  herald poison list                     what is parked, with each notification's state
  herald poison show ID                  one notification's parked message and whole history
  herald poison requeue ID...|--all      send them back to their work queue for a new round of attempts
  herald poison discard ID...|--all --reason TEXT
                                         give up on them; they stay failed

IDs are notification ids. Every requeue and discard is an event in the notification's stream
saying who did it (--actor, by default your OS user name) and why (--reason); status and history
show it. Each command exits with status 0 only when it did everything asked; -o json prints
for scripts.

Looking at the queue takes its messages for a moment and hands them straight back, so its depth
stays true. One look runs at a time, across every process: a command started while another
looks says so and waits for it (Ctrl-C gives up). poison_notifications is a classic queue, so looking is not counted against any
delivery limit; the work queues dead-letter into it the commands RabbitMQ gives up on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(poisonListCommand(), poisonShowCommand(), poisonActionCommand(actionRequeue), poisonActionCommand(actionDiscard))
	return cmd
}

// poisonConfig is what every poison subcommand needs.
type poisonConfig struct {
	logs    logConfig
	db      dbConfig
	amqpURL string
	output  string
}

func (c *poisonConfig) register(s *settings) {
	c.logs.register(s)
	c.db.register(s, false)
	s.URL(&c.amqpURL, "amqp-url", "HERALD_AMQP_URL", defaultAMQPURL, "RabbitMQ connection URL")
	s.fs.StringVarP(&c.output, "output", "o", "table", "output format: table (for people) or json (for scripts)")
	markArguments(s.fs, "output")
}

// validate checks the settings without connecting anywhere.
func (c *poisonConfig) validate() error {
	var errs []error
	if c.output != "table" && c.output != "json" {
		errs = append(errs, fmt.Errorf("-o %q: want table or json", c.output))
	}
	if _, err := amqp091.ParseURI(c.amqpURL); err != nil {
		errs = append(errs, fmt.Errorf("--amqp-url: %w", err))
	}
	if _, err := c.logs.logger(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// operator connects to PostgreSQL (which must be at the current schema) and returns the
// operator, and what closes it.
func (c *poisonConfig) operator(ctx context.Context) (*handlers.Operator, func(), error) {
	logger, err := c.logs.logger()
	if err != nil {
		return nil, nil, err
	}
	pool, err := c.db.cliPool(ctx, logger)
	if err != nil {
		return nil, nil, err
	}
	op := handlers.NewOperator(pool, events.NewLog(pool), router.NewOutbox(nil), router.NewPoisonQueue(c.amqpURL, logger))
	return op, pool.Close, nil
}

func poisonListCommand() *cobra.Command {
	var (
		cfg     poisonConfig
		channel string
		limit   int
		cursor  string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the parked notifications: id, channel, recipient, reason, attempts, when they failed",
		Long: `list shows the messages in the poison queue, in queue order, with their notifications' state
from the event log: channel, recipient, why it failed (permanent_error or attempts_exhausted, and
the last error), how many attempts were made and when it failed. A message whose notification is
no longer failed is stale: left over from a requeue or a discard whose removal did not happen, or
a command RabbitMQ dead-lettered while its notification was still under way (a requeue sends
that one again). The messages stay in the queue.

Without --limit, list walks the whole queue once and prints it as it goes, 50 messages at a
time. With --limit N it prints one page of at most N messages and, when there are more, the
cursor of the next page; --cursor C prints the page after the one that gave C (its JSON is the
API's GET /api/v1/poison). Memory stays bounded by the page, whatever the queue's depth; a page
takes longer the further into the queue it is, since AMQP cannot seek.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			c, err := parsePoisonChannel(channel)
			if err != nil {
				return err
			}
			if limit < 0 || limit > handlers.MaxParkedPageSize {
				return fmt.Errorf("--limit %d: want 1 to %d, or 0 for the whole queue", limit, handlers.MaxParkedPageSize)
			}
			op, done, err := cfg.operator(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if limit == 0 && cursor == "" {
				return streamParked(cmd.Context(), cmd.OutOrStdout(), cfg.output, op, c)
			}
			page, err := op.ParkedPage(cmd.Context(), handlers.ParkedQuery{Channel: c, Limit: limit, Cursor: cursor})
			if err != nil {
				return poisonCLIError(err)
			}
			if cfg.output == "json" {
				return poisonWriteJSON(cmd.OutOrStdout(), wire.NewParkedPage(page))
			}
			if err := printParked(cmd.OutOrStdout(), page.Parked, true); err != nil {
				return err
			}
			if page.Next != "" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "\nMore are parked: --cursor %s\n", page.Next)
			}
			return err
		},
	}
	cfg.register(newSettings(cmd))
	cmd.Flags().StringVar(&channel, "channel", "", "list only the notifications of this channel: email or sms")
	cmd.Flags().IntVar(&limit, "limit", 0, fmt.Sprintf("print one page of at most this many messages (1 to %d; 0: the whole queue)", handlers.MaxParkedPageSize))
	cmd.Flags().StringVar(&cursor, "cursor", "", "print the page after the one that gave this cursor")
	markArguments(cmd.Flags(), "channel", "limit", "cursor")
	return cmd
}

// streamParked prints the whole poison queue in one walk, a page at a time, holding no more than
// a page. Its JSON is the shape of one page that holds them all.
func streamParked(ctx context.Context, w io.Writer, output string, op *handlers.Operator, c herald.Channel) error {
	first, listed := true, false
	if output == "json" {
		if _, err := io.WriteString(w, "{\n  \"parked\": ["); err != nil {
			return err
		}
	}
	err := op.WalkParked(ctx, c, handlers.DefaultParkedPageSize, func(batch []handlers.Parked) error {
		listed = listed || len(batch) > 0
		if output != "json" {
			err := printParked(w, batch, first)
			first = false
			return err
		}
		// The API's shape of each message, written as it comes.
		for _, p := range wire.NewParkedPage(handlers.ParkedPage{Parked: batch}).Parked {
			b, err := json.MarshalIndent(p, "    ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n    "
			if first {
				sep, first = "\n    ", false
			}
			if _, err := fmt.Fprintf(w, "%s%s", sep, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return poisonCLIError(err)
	}
	switch {
	case output == "json" && listed:
		_, err = io.WriteString(w, "\n  ]\n}\n")
	case output == "json":
		_, err = io.WriteString(w, "]\n}\n")
	case !listed:
		_, err = fmt.Fprintln(w, "Nothing is parked.")
	}
	return err
}

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
				return poisonCLIError(err)
			}
			op, done, err := cfg.operator(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			d, err := op.Show(cmd.Context(), id)
			if err != nil {
				return poisonCLIError(err)
			}
			return printParkedDetail(cmd.OutOrStdout(), cfg.output, id, d)
		},
	}
	cfg.register(newSettings(cmd))
	return cmd
}

// poisonAction is requeue or discard.
type poisonAction struct {
	name, short, long string
	reasonRequired    bool
	act               func(*handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error)
}

var (
	actionRequeue = poisonAction{
		name:  "requeue",
		short: "Send failed notifications back to their work queue for a new round of attempts",
		long: `requeue sends each named notification (or with --all every parked one, of --channel only if
given) back to its work queue: NotificationRequeued, saying --actor and --reason, is appended to
its stream together with a new delivery command, which the relay of "herald serve" forwards;
the workers then make a new round of attempts (as many as the workers' --max-attempts), numbered
after the old ones. Its parked messages are then removed.

Every notification is checked first; if one is unknown, or is not failed and has nothing parked,
nothing is done. A parked message of a sent notification is only removed; one of a notification
still pending or processing has its command sent again (no event); one of a discarded
notification is only removed under --all, and requeued when named.`,
		act: func(op *handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error) {
			return op.Requeue
		},
	}
	actionDiscard = poisonAction{
		name:  "discard",
		short: "Give up on failed notifications and remove them from the poison queue",
		long: `discard records that you gave up on each named notification (or with --all every parked one, of
--channel only if given): NotificationDiscarded, saying --actor and --reason (required), is
appended to its stream, and its parked messages are removed. It stays failed.

Every notification is checked first; if one is unknown, or is not failed (or already discarded)
and has nothing parked, nothing is done. Stale parked messages, and parked messages of
notifications the log does not know, are only removed.`,
		reasonRequired: true,
		act: func(op *handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error) {
			return op.Discard
		},
	}
)

func poisonActionCommand(a poisonAction) *cobra.Command {
	var (
		cfg     poisonConfig
		all     bool
		channel string
		actor   string
		reason  string
	)
	cmd := &cobra.Command{
		Use:   a.name + " ID... | --all [--channel email|sms]",
		Short: a.short,
		Long:  a.long,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			sel, err := parsePoisonSelection(a.name, args, all, channel)
			if err != nil {
				return err
			}
			if actor, err = poisonActor(actor); err != nil {
				return err
			}
			if a.reasonRequired && strings.TrimSpace(reason) == "" {
				return fmt.Errorf("%s needs --reason: say why the notifications are given up on", a.name)
			}
			op, done, err := cfg.operator(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			// The operator's invocation is what causes the events it appends.
			ctx := herald.WithCorrelationID(cmd.Context(), "cli-"+uuid.NewString())
			results, err := a.act(op)(ctx, sel, actor, reason)
			if len(results) > 0 || err == nil {
				if perr := printPoisonResults(cmd.OutOrStdout(), cfg.output, results); perr != nil && err == nil {
					err = perr
				}
			}
			return poisonCLIError(err)
		},
	}
	cfg.register(newSettings(cmd))
	fs := cmd.Flags()
	fs.BoolVar(&all, "all", false, "act on every parked notification instead of the ids given")
	fs.StringVar(&channel, "channel", "", "with --all: only the notifications of this channel, email or sms")
	fs.StringVar(&actor, "actor", "", "who is acting, recorded in the log (default: your OS user name)")
	reasonUsage := "why, recorded in the log"
	if a.reasonRequired {
		reasonUsage += " (required)"
	}
	fs.StringVar(&reason, "reason", "", reasonUsage)
	markArguments(fs, "all", "channel", "actor", "reason")
	return cmd
}

// parsePoisonSelection checks the notifications named on the command line, before anything connects.
func parsePoisonSelection(verb string, args []string, all bool, channel string) (handlers.Selection, error) {
	sel := handlers.Selection{All: all}
	switch {
	case all && len(args) > 0:
		return sel, fmt.Errorf("%s: give notification ids or --all, not both", verb)
	case !all && len(args) == 0:
		return sel, fmt.Errorf("%s: name the notifications (their ids), or give --all", verb)
	case !all && channel != "":
		return sel, fmt.Errorf("%s: --channel only narrows --all; give it with --all", verb)
	}
	c, err := parsePoisonChannel(channel)
	if err != nil {
		return sel, err
	}
	sel.Channel = c
	var bad []string
	for _, a := range args {
		id, err := handlers.ParseID(a)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", a))
			continue
		}
		sel.IDs = append(sel.IDs, id)
	}
	if len(bad) > 0 {
		return sel, fmt.Errorf("%s: not a notification id (a UUID): %s", verb, strings.Join(bad, ", "))
	}
	return sel, nil
}

func parsePoisonChannel(channel string) (herald.Channel, error) {
	if channel == "" {
		return "", nil
	}
	c, err := herald.ParseChannel(channel)
	if err != nil {
		return "", fmt.Errorf("--channel: %s", herald.ErrorMessage(err))
	}
	return c, nil
}

// poisonActor returns actor, or when it is empty the OS user's name.
func poisonActor(actor string) (string, error) {
	if strings.TrimSpace(actor) != "" {
		return actor, nil
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if name := os.Getenv("USER"); name != "" {
		return name, nil
	}
	return "", errors.New("--actor: cannot tell who you are from the OS; say who is acting with --actor")
}

// poisonCLIError turns an operator's error into what a person at a terminal should read: the message
// of a client error without its code; anything else as it is.
func poisonCLIError(err error) error {
	var he *herald.Error
	if !errors.As(err, &he) || he.Code == herald.EINTERNAL {
		return err
	}
	msg := he.Message
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(he.Fields)) {
		if !strings.Contains(msg, k) {
			missing = append(missing, k+" "+he.Fields[k])
		}
	}
	if len(missing) > 0 {
		msg += ": " + strings.Join(missing, "; ")
	}
	if he.Code == herald.EUNAVAILABLE && he.Err != nil {
		msg += ": " + he.Err.Error()
	}
	return errors.New(msg)
}

// The JSON shapes the poison commands print for scripts. The list's items are those of the
// API's GET /api/v1/poison.

type parkedMessageJSON struct {
	MessageID     string            `json:"message_id"`
	CorrelationID string            `json:"correlation_id"`
	ParkedBecause string            `json:"parked_because"`
	Queue         string            `json:"queue"`
	Handler       string            `json:"handler"`
	Deliveries    int               `json:"deliveries"`
	Timestamp     *time.Time        `json:"timestamp"`
	Stale         bool              `json:"stale"`
	Unreadable    string            `json:"unreadable,omitempty"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
}

type parkedHistoryJSON struct {
	Version  int64     `json:"version"`
	Position int64     `json:"position"`
	Event    string    `json:"event"`
	Status   string    `json:"status"`
	Attempt  int       `json:"attempt,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Error    string    `json:"error,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	At       time.Time `json:"at"`
}

type poisonResultJSON struct {
	ID      string `json:"id"`
	Action  string `json:"action"`
	Status  string `json:"status"`
	Version int64  `json:"version"`
	Removed int    `json:"removed"`
}

func poisonWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "ID\tCHANNEL\tRECIPIENT\tREASON\tATTEMPTS\tFAILED AT\tERROR\tNOTE")
	}
	for _, p := range parked {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			poisonCell(p.Message.NotificationID), poisonCell(string(p.Channel())), poisonCell(p.Notification.Recipient),
			poisonCell(p.FailReason), p.Notification.Attempts, poisonTime(p.FailedAt), poisonCell(poisonClip(p.FailError, 60)), parkedNote(p))
	}
	return tw.Flush()
}

// parkedNote says what is unusual about a parked message.
func parkedNote(p handlers.Parked) string {
	switch {
	case p.Message.Unreadable != "":
		return "unreadable: " + poisonClip(p.Message.Unreadable, 60)
	case p.Notification.Version == 0:
		return "unknown notification"
	case p.Stale && p.Notification.Status != herald.StatusFailed:
		return "stale: now " + string(p.Notification.Status)
	case p.Stale:
		return "stale: discarded"
	}
	return "-"
}

func printParkedDetail(w io.Writer, output, id string, d handlers.ParkedDetail) error {
	n := d.Notification
	if output == "json" {
		out := struct {
			ID           string              `json:"id"`
			Notification any                 `json:"notification"`
			Parked       []parkedMessageJSON `json:"parked"`
			History      []parkedHistoryJSON `json:"history"`
		}{ID: id, Parked: []parkedMessageJSON{}, History: []parkedHistoryJSON{}}
		if n.Version > 0 {
			out.Notification = struct {
				Type      string    `json:"type"`
				Recipient string    `json:"recipient"`
				Status    string    `json:"status"`
				Attempts  int       `json:"attempts"`
				LastError string    `json:"last_error,omitempty"`
				Version   int64     `json:"version"`
				CreatedAt time.Time `json:"created_at"`
				UpdatedAt time.Time `json:"updated_at"`
			}{string(n.Channel), n.Recipient, string(n.Status), n.Attempts, n.LastError, n.Version, n.CreatedAt.UTC(), n.UpdatedAt.UTC()}
		}
		for _, p := range d.Messages {
			m := p.Message
			mj := parkedMessageJSON{
				MessageID: m.MessageID, CorrelationID: m.CorrelationID, ParkedBecause: m.Reason, Queue: m.Queue,
				Handler: m.Handler, Deliveries: m.Deliveries, Stale: p.Stale, Unreadable: m.Unreadable,
				Headers: m.Headers, Body: string(m.Body),
			}
			if !m.Timestamp.IsZero() {
				ts := m.Timestamp.UTC()
				mj.Timestamp = &ts
			}
			out.Parked = append(out.Parked, mj)
		}
		for _, h := range d.History {
			out.History = append(out.History, parkedHistoryJSON{
				Version: h.Version, Position: h.Position, Event: h.Event, Status: string(h.Status), Attempt: h.Attempt,
				Provider: h.Provider, Error: h.Error, Reason: h.Reason, Actor: h.Actor, At: h.At.UTC(),
			})
		}
		return poisonWriteJSON(w, out)
	}

	ew := &poisonPrinter{w: w}
	ew.printf("Notification %s\n", id)
	if n.Version == 0 {
		ew.printf("  not in the event log\n")
	} else {
		ew.printf("  channel:    %s\n  recipient:  %s\n  status:     %s after %d attempt(s)\n", n.Channel, n.Recipient, n.Status, n.Attempts)
		if n.LastError != "" {
			ew.printf("  last error: %s\n", n.LastError)
		}
		ew.printf("  created:    %s\n  updated:    %s\n", poisonTime(n.CreatedAt), poisonTime(n.UpdatedAt))
	}
	ew.printf("\nParked messages: %d\n", len(d.Messages))
	for i, p := range d.Messages {
		m := p.Message
		ew.printf("\n  message %d of %d%s\n", i+1, len(d.Messages), map[bool]string{true: " (stale)", false: ""}[p.Stale])
		ew.printf("    message id:      %s\n", poisonCell(m.MessageID))
		ew.printf("    correlation id:  %s\n", poisonCell(m.CorrelationID))
		ew.printf("    parked because:  %s\n", poisonCell(m.Reason))
		ew.printf("    queue, handler:  %s, %s\n", poisonCell(m.Queue), poisonCell(m.Handler))
		ew.printf("    deliveries:      %d\n", m.Deliveries)
		if m.Unreadable != "" {
			ew.printf("    unreadable:      %s\n", m.Unreadable)
		}
		ew.printf("    headers:\n")
		for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
			ew.printf("      %s: %s\n", k, m.Headers[k])
		}
		ew.printf("    body: %s\n", m.Body)
	}
	ew.printf("\nHistory:\n")
	if ew.err != nil {
		return ew.err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tAT\tEVENT\tSTATUS\tATTEMPT\tACTOR\tREASON\tERROR")
	for _, h := range d.History {
		attempt := "-"
		if h.Attempt > 0 {
			attempt = fmt.Sprint(h.Attempt)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Version, poisonTime(h.At), h.Event, h.Status, attempt,
			poisonCell(h.Actor), poisonCell(h.Reason), poisonCell(h.Error))
	}
	return tw.Flush()
}

func printPoisonResults(w io.Writer, output string, results []handlers.Result) error {
	if output == "json" {
		out := struct {
			Results []poisonResultJSON `json:"results"`
		}{Results: make([]poisonResultJSON, 0, len(results))}
		for _, r := range results {
			out.Results = append(out.Results, poisonResultJSON{ID: r.ID, Action: string(r.Action), Status: string(r.Status), Version: r.Version, Removed: r.Removed})
		}
		return poisonWriteJSON(w, out)
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "Nothing is parked: nothing was done.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSTATUS\tVERSION\tREMOVED")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.ID, r.Action, poisonCell(string(r.Status)), r.Version, r.Removed)
	}
	return tw.Flush()
}

// poisonPrinter keeps the first write error, so a sequence of prints checks it once.
type poisonPrinter struct {
	w   io.Writer
	err error
}

func (e *poisonPrinter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func poisonCell(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return poisonOneLine(s)
}

// poisonOneLine keeps a table row on one line and its columns apart.
func poisonOneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
}

func poisonClip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func poisonTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
