package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/wire"
)

// suppressionsCommand groups the operators' commands on the suppression list.
func suppressionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "suppressions",
		Short: "Manage the suppression list: the recipients Herald does not send to",
		Long: `The suppression list holds the recipients Herald does not send to, per channel: those whose
mail server reported a hard bounce, who complained of a message, who opted out by SMS, and those
an operator put there. A worker asks the list before each attempt.

  herald suppressions list [--channel C] [--cause C] [--all]   the entries that hold (--all: every one)
  herald suppressions add CHANNEL RECIPIENT --reason TEXT [--expires-in 720h | --expires-at TIME]
  herald suppressions remove CHANNEL RECIPIENT --reason TEXT   lift a suppression
  herald suppressions show CHANNEL RECIPIENT                   one entry and its history

CHANNEL is email or sms; RECIPIENT an email address (in any case, with or without a display
name: the list keeps the address in lower case) or an E.164 number such as +14155550123. Every
change is an event of the entry's stream in the log, with who made it (--actor, by default your
OS user name) and why (--reason). The API serves the same under /api/v1/suppressions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(suppressionsListCommand(), suppressionsAddCommand(), suppressionsRemoveCommand(), suppressionsShowCommand())
	return cmd
}

// suppressionRun is what a suppressions subcommand does with the list, who acts, and the format.
type suppressionRun func(ctx context.Context, cmd *cobra.Command, args []string, list *suppressions.Store, actor string, output format) error

// suppressionCommand builds a suppressions subcommand that works on the list: database and log
// settings, -o, and with acts --actor. check, when given, checks the command line before
// anything connects.
func suppressionCommand(use, short string, args cobra.PositionalArgs, acts bool, check func(args []string) error, run suppressionRun) *cobra.Command {
	var (
		cli   cliDB
		actor string
	)
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	output := registerFormat(cmd.Flags(), formatTable, formatJSON)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if check != nil {
			if err := check(args); err != nil {
				return err
			}
		}
		ctx := cmd.Context()
		if acts {
			var err error
			if actor, err = poisonActor(actor); err != nil {
				return err
			}
			// The operator's invocation is what causes the events it appends.
			ctx = herald.WithCorrelationID(ctx, "cli-"+uuid.NewString())
		}
		pool, _, err := cli.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		return run(ctx, cmd, args, suppressions.New(pool), actor, *output)
	}
	cli.register(newSettings(cmd))
	if acts {
		cmd.Flags().StringVar(&actor, "actor", "", "who makes the change, for the record; empty: your OS user name")
		markArguments(cmd.Flags(), "actor")
	}
	return cmd
}

// checkChannel checks the CHANNEL argument.
func checkChannel(args []string) error {
	if _, err := herald.ParseChannel(args[0]); err != nil {
		return errors.New("CHANNEL: " + herald.ErrorMessage(err))
	}
	return nil
}

// suppressionError is what a person reads of an error of the list: an invalid input names what
// to fix — CHANNEL and RECIPIENT as the arguments, the others as their flags; anything else
// says what happened.
func suppressionError(err error) error {
	var he *herald.Error
	if !errors.As(err, &he) || he.Code != herald.EINVALID || len(he.Fields) == 0 {
		return cliError(err, fieldsAsWords)
	}
	var msgs []string
	for _, k := range slices.Sorted(maps.Keys(he.Fields)) {
		name := "--" + strings.ReplaceAll(k, "_", "-")
		if k == "channel" || k == "recipient" {
			name = strings.ToUpper(k)
		}
		msgs = append(msgs, name+": "+he.Fields[k])
	}
	return errors.New(strings.Join(msgs, "; "))
}

// suppressionsListCommand prints a page of the list.
func suppressionsListCommand() *cobra.Command {
	var f suppressions.Filter
	var channel string
	cmd := suppressionCommand("list", "List the suppressed recipients: channel, recipient, cause, since, expiry, reason", cobra.NoArgs, false,
		func([]string) error {
			if channel != "" {
				if _, err := herald.ParseChannel(channel); err != nil {
					return errors.New("--channel: " + herald.ErrorMessage(err))
				}
			}
			if f.Cause != "" && !slices.Contains(events.SuppressionCauses, f.Cause) {
				return fmt.Errorf("--cause: unknown cause %q: want one of %s", f.Cause, strings.Join(events.SuppressionCauses, ", "))
			}
			if f.Limit < 1 || f.Limit > suppressions.MaxLimit {
				return fmt.Errorf("--limit: must be a whole number from 1 to %d", suppressions.MaxLimit)
			}
			return nil
		},
		func(ctx context.Context, cmd *cobra.Command, _ []string, list *suppressions.Store, _ string, output format) error {
			f.Channel = herald.Channel(channel)
			page, next, err := list.List(ctx, f)
			if err != nil {
				return suppressionError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, wire.NewSuppressionList(page, next))
			}
			if err := writeSuppressionTable(w, page, f.All); err != nil {
				return err
			}
			if next != "" {
				_, err = fmt.Fprintf(w, "\nMore are listed: --cursor %s\n", next)
			}
			return err
		})
	cmd.Long = `list prints the suppression list by channel and recipient, a page at a time: the entries
that hold now, or with --all every entry, removed and expired ones too (STATE says which). The
reason is cut to fit a line; show prints it whole. When more entries follow, list ends with the
cursor of the next page. -o json prints what GET /api/v1/suppressions answers.`
	cmd.Example = `  herald suppressions list
  herald suppressions list --channel sms --cause opt_out
  herald suppressions list --all --limit 500 -o json`
	fs := cmd.Flags()
	fs.StringVar(&channel, "channel", "", "list only this channel's entries: email or sms")
	fs.StringVar(&f.Cause, "cause", "", "list only the entries of this cause: "+strings.Join(events.SuppressionCauses, ", "))
	fs.BoolVar(&f.All, "all", false, "list removed and expired entries too")
	fs.IntVar(&f.Limit, "limit", suppressions.DefaultLimit, fmt.Sprintf("print at most this many entries (1 to %d)", suppressions.MaxLimit))
	fs.StringVar(&f.Cursor, "cursor", "", "print the page after the one that gave this cursor")
	markArguments(fs, "channel", "cause", "all", "limit", "cursor")
	return cmd
}

// writeSuppressionTable prints list for people; with state, whether each entry holds.
func writeSuppressionTable(w io.Writer, list []suppressions.Suppression, state bool) error {
	tw := newTable(w)
	head := "CHANNEL\tRECIPIENT\tCAUSE\tSINCE\tEXPIRES\tREASON"
	if state {
		head = "CHANNEL\tRECIPIENT\tSTATE\tCAUSE\tSINCE\tEXPIRES\tREASON"
	}
	fmt.Fprintln(tw, head)
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t", s.Channel, cell(s.Recipient, 60))
		if state {
			fmt.Fprintf(tw, "%s\t", suppressionState(s))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Cause, tableTime(s.CreatedAt), expiresWords(s.ExpiresAt), orDash(cell(s.Reason, 50)))
	}
	return tw.Flush()
}

// suppressionState says whether s holds: holds, removed or expired.
func suppressionState(s suppressions.Suppression) string {
	switch {
	case s.Active:
		return "holds"
	case s.RemovedAt != nil:
		return "removed"
	}
	return "expired"
}

// expiresWords renders an expiry, "never" when the suppression holds until removed.
func expiresWords(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return tableTime(*t)
}

// suppressionsAddCommand puts a recipient on the list.
func suppressionsAddCommand() *cobra.Command {
	var (
		reason, expiresAt string
		expiresIn         time.Duration
	)
	cmd := suppressionCommand("add CHANNEL RECIPIENT --reason TEXT [--expires-in DURATION | --expires-at TIME]",
		"Suppress a recipient: nothing more is sent to them on the channel", cobra.ExactArgs(2), true,
		func(args []string) error {
			var errs []error
			if err := checkChannel(args); err != nil {
				errs = append(errs, err)
			}
			if expiresAt != "" {
				if _, err := time.Parse(time.RFC3339, expiresAt); err != nil {
					errs = append(errs, fmt.Errorf("--expires-at: %q is not an RFC 3339 time such as 2027-01-01T00:00:00Z", expiresAt))
				}
			}
			return errors.Join(errs...)
		},
		func(ctx context.Context, cmd *cobra.Command, args []string, list *suppressions.Store, actor string, output format) error {
			add := suppressions.Add{Channel: herald.Channel(args[0]), Recipient: args[1], Reason: reason, ExpiresIn: expiresIn}
			if expiresAt != "" {
				at, _ := time.Parse(time.RFC3339, expiresAt) // checked before connecting
				add.ExpiresAt = &at
			}
			if cmd.Flags().Changed("expires-in") && expiresIn == 0 {
				return errors.New("--expires-in: must be a positive duration, such as 720h")
			}
			s, err := list.Add(ctx, add, actor)
			if err != nil {
				return suppressionError(err)
			}
			return printSuppression(cmd.OutOrStdout(), output, "Suppressed", s)
		})
	cmd.Long = `add puts a recipient on the suppression list (cause manual): from now on no attempt is made
to send to them on the channel. --reason is required, and recorded. The suppression holds until
it is removed, or until --expires-in (a duration: 720h, 90m) or --expires-at (an RFC 3339 time),
whichever is given; not both. Adding a recipient who is suppressed already replaces the entry's
cause, reason and expiry with these, as a new event of its stream.`
	cmd.Example = `  herald suppressions add email ann@example.com --reason "asked by phone, ticket 4411"
  herald suppressions add sms +14155550123 --reason "number being reassigned" --expires-in 720h
  herald suppressions add email bob@example.com --reason "legal hold" --expires-at 2027-01-01T00:00:00Z -o json`
	fs := cmd.Flags()
	fs.StringVar(&reason, "reason", "", "why the recipient must not receive (required)")
	fs.DurationVar(&expiresIn, "expires-in", 0, "lift the suppression by itself after this long, such as 720h (default: never)")
	fs.StringVar(&expiresAt, "expires-at", "", "lift the suppression by itself at this RFC 3339 time (default: never)")
	markArguments(fs, "reason", "expires-in", "expires-at")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// suppressionsRemoveCommand lifts a suppression.
func suppressionsRemoveCommand() *cobra.Command {
	var reason string
	cmd := suppressionCommand("remove CHANNEL RECIPIENT --reason TEXT", "Lift a recipient's suppression: Herald sends to them again",
		cobra.ExactArgs(2), true, checkChannel,
		func(ctx context.Context, cmd *cobra.Command, args []string, list *suppressions.Store, actor string, output format) error {
			s, err := list.Remove(ctx, herald.Channel(args[0]), args[1], actor, reason)
			if err != nil {
				return suppressionError(err)
			}
			return printSuppression(cmd.OutOrStdout(), output, "Lifted the suppression of", s)
		})
	cmd.Long = `remove lifts the suppression that holds for a recipient on a channel, whatever its cause: the
next notification to them is sent. --reason is required, and recorded. The entry and its history
stay (list --all, show). It fails when no suppression holds for the recipient.`
	cmd.Example = `  herald suppressions remove email ann@example.com --reason "mailbox fixed, confirmed by phone"
  herald suppressions remove sms +14155550123 --reason "opted back in by email"`
	cmd.Flags().StringVar(&reason, "reason", "", "why the recipient may receive again (required)")
	markArguments(cmd.Flags(), "reason")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// suppressionsShowCommand prints one entry and its history.
func suppressionsShowCommand() *cobra.Command {
	cmd := suppressionCommand("show CHANNEL RECIPIENT", "Show a recipient's entry on the list and its history", cobra.ExactArgs(2), false, checkChannel,
		func(ctx context.Context, cmd *cobra.Command, args []string, list *suppressions.Store, _ string, output format) error {
			channel := herald.Channel(args[0])
			s, err := list.Get(ctx, channel, args[1])
			if err != nil {
				return suppressionError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, wire.NewSuppression(s))
			}
			history, err := list.History(ctx, channel, args[1])
			if err != nil {
				return suppressionError(err)
			}
			if err := writeSuppressionFields(w, s); err != nil {
				return err
			}
			return writeStreamHistory(w, history)
		})
	cmd.Long = `show prints a recipient's entry on the list — whether it holds, its cause and reason, since
when and by whom, until when — and its history: every change, when, by whom, in words. An entry
that was removed or expired is still shown. -o json prints the entry as
GET /api/v1/suppressions/{channel}/{recipient} answers; its history is
GET /api/v1/suppressions/{channel}/{recipient}/events.`
	cmd.Example = `  herald suppressions show email ann@example.com
  herald suppressions show sms +14155550123 -o json`
	return cmd
}

// writeSuppressionFields prints s as a column of labelled values.
func writeSuppressionFields(w io.Writer, s suppressions.Suppression) error {
	tw := newTable(w)
	row := func(label, value string) { fmt.Fprintf(tw, "%s\t%s\n", label, value) }
	row("Channel", string(s.Channel))
	row("Recipient", cell(s.Recipient, 0))
	row("State", suppressionState(s))
	row("Cause", s.Cause)
	row("Reason", orDash(cell(s.Reason, 0)))
	if s.NotificationID != "" {
		row("Notification", s.NotificationID)
	}
	row("Since", tableTime(s.CreatedAt)+" by "+orDash(cell(s.CreatedBy, 0)))
	row("Expires", expiresWords(s.ExpiresAt))
	if s.RemovedAt != nil {
		row("Removed", tableTime(*s.RemovedAt))
	}
	row("Version", fmt.Sprint(s.Version))
	return tw.Flush()
}

// printSuppression prints s after a change done ("Suppressed"), as a table or JSON.
func printSuppression(w io.Writer, output format, done string, s suppressions.Suppression) error {
	if output == formatJSON {
		return writeJSON(w, wire.NewSuppression(s))
	}
	what := " (until removed)."
	switch {
	case !s.Active:
		what = ": Herald sends to this recipient again."
	case s.ExpiresAt != nil:
		what = " (until " + tableTime(*s.ExpiresAt) + ")."
	}
	fmt.Fprintf(w, "%s %s %s%s\n\n", done, s.Channel, cell(s.Recipient, 0), what)
	return writeSuppressionFields(w, s)
}
