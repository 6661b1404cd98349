package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// poisonAction is requeue or discard.
type poisonAction struct {
	name, short, long string
	// action is what it records, and what --dry-run previews.
	action         handlers.Action
	reasonRequired bool
	act            func(*handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error)
}

// The two things an operator can do with parked notifications: try again, or give up.
var (
	actionRequeue = poisonAction{
		name:   "requeue",
		action: handlers.ActionRequeued,
		short:  "Send failed notifications back to their work queue for a new round of attempts",
		long: `requeue sends each named notification (or with --all every parked one, of --type only if
given) back to its work queue: NotificationRequeued, saying --actor and --reason, is appended to
its stream together with a new delivery command, which the relay of "herald serve" forwards;
the workers then make a new round of attempts (as many as the workers' --max-attempts), numbered
after the old ones. Its parked messages are then removed.

Every notification is checked first; if one is unknown, or is not failed and has nothing parked,
nothing is done. A parked message of a sent notification is only removed; one of a notification
still pending or processing has its command sent again (no event); one of a discarded
notification is only removed under --all, and requeued when named.

--dry-run makes the same checks and prints what would be done, doing nothing.`,
		act: func(op *handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error) {
			return op.Requeue
		},
	}
	actionDiscard = poisonAction{
		name:   "discard",
		action: handlers.ActionDiscarded,
		short:  "Give up on failed notifications and remove them from the poison queue",
		long: `discard records that you gave up on each named notification (or with --all every parked one, of
--type only if given): NotificationDiscarded, saying --actor and --reason (required), is
appended to its stream, and its parked messages are removed. It stays failed.

Every notification is checked first; if one is unknown, or is not failed (or already discarded)
and has nothing parked, nothing is done. Stale parked messages, and parked messages of
notifications the log does not know, are only removed.

--dry-run makes the same checks and prints what would be done, doing nothing.`,
		reasonRequired: true,
		act: func(op *handlers.Operator) func(context.Context, handlers.Selection, string, string) ([]handlers.Result, error) {
			return op.Discard
		},
	}
)

// poisonActionCommand builds the command of a: it checks the selection, acts, and prints what
// was done to each notification, even when it failed part-way.
func poisonActionCommand(a poisonAction) *cobra.Command {
	var (
		cfg     poisonConfig
		all     bool
		channel channelFilter
		actor   string
		reason  string
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   a.name + " ID... | --all [--type email|sms]",
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
			if dryRun {
				plan, err := op.Preview(ctx, a.action, sel, actor, reason)
				if err != nil {
					return cliError(err, fieldsAsWords)
				}
				return printPoisonPlan(cmd.OutOrStdout(), *cfg.output, plan)
			}
			results, err := a.act(op)(ctx, sel, actor, reason)
			if len(results) > 0 || err == nil {
				if perr := printPoisonResults(cmd.OutOrStdout(), *cfg.output, results); perr != nil && err == nil {
					err = perr
				}
			}
			return cliError(err, fieldsAsWords)
		},
	}
	cfg.register(newSettings(cmd))
	fs := cmd.Flags()
	fs.BoolVar(&all, "all", false, "act on every parked notification instead of the ids given")
	channel.register(fs, "with --all: only the notifications of this channel, email or sms")
	fs.StringVar(&actor, "actor", "", "who is acting, recorded in the log (default: your OS user name)")
	reasonUsage := "why, recorded in the log"
	if a.reasonRequired {
		reasonUsage += " (required)"
	}
	fs.StringVar(&reason, "reason", "", reasonUsage)
	fs.BoolVar(&dryRun, "dry-run", false, "print what would be done, and do nothing")
	markArguments(fs, "all", "actor", "reason", "dry-run")
	return cmd
}

// parsePoisonSelection checks the notifications named on the command line, before anything connects.
func parsePoisonSelection(verb string, args []string, all bool, channel channelFilter) (handlers.Selection, error) {
	sel := handlers.Selection{All: all}
	switch {
	case all && len(args) > 0:
		return sel, fmt.Errorf("%s: give notification ids or --all, not both", verb)
	case !all && len(args) == 0:
		return sel, fmt.Errorf("%s: name the notifications (their ids), or give --all", verb)
	case !all && channel.given():
		return sel, fmt.Errorf("%s: --type only narrows --all; give it with --all", verb)
	}
	c, err := channel.parse()
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

// printPoisonResults prints what requeue or discard did to each notification.
func printPoisonResults(w io.Writer, output format, results []handlers.Result) error {
	if output == formatJSON {
		return writeJSON(w, wire.NewResults(results))
	}
	if len(results) == 0 {
		_, err := fmt.Fprintln(w, "Nothing is parked: nothing was done.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tACTION\tSTATUS\tVERSION\tREMOVED")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", r.ID, r.Action, cell(orDash(string(r.Status)), 0), r.Version, r.Removed)
	}
	return tw.Flush()
}

// printPoisonPlan prints what requeue or discard would do to each notification.
func printPoisonPlan(w io.Writer, output format, plan []handlers.Planned) error {
	if output == formatJSON {
		return writeJSON(w, wire.Plan{Plan: wire.NewPlan(plan)})
	}
	if len(plan) == 0 {
		_, err := fmt.Fprintln(w, "Nothing is parked: nothing would be done.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tWOULD BE\tSTATUS NOW\tVERSION\tPARKED")
	for _, p := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", p.ID, p.Action, cell(orDash(string(p.Notification.Status)), 0), p.Notification.Version, p.Parked)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "Nothing was done (--dry-run).")
	return err
}
