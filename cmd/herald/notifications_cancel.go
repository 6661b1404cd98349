package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// notificationsCancelCommand calls off notifications that have not gone out, as an operator on
// the machine: any notification, whoever sent it.
func notificationsCancelCommand() *cobra.Command {
	var (
		cli     cliDB
		attempt attemptConfig
		output  *format
		actor   string
		reason  string
	)
	cmd := &cobra.Command{
		Use:   "cancel ID... [--reason R]",
		Short: "Cancel notifications that have not gone out",
		Long: `cancel calls off each named notification that has not gone out: one that is pending, or
waiting between delivery attempts (processing, its last attempt failed, no attempt in flight).
NotificationCancelled, saying --actor and --reason, is appended to its stream with the stream's
expected version, so that it and a worker's start of an attempt cannot both be recorded: if a
worker starts one first, the cancel is refused. An attempt open for longer than the workers'
lease (--attempt-lease, or --delivery-timeout + 30s: give it the workers' settings) is presumed
abandoned, its worker gone: its DeliveryAttemptFailed and NotificationCancelled are appended
together. Workers acknowledge the command of a cancelled notification without sending it. Any
notification can be cancelled from here, as with an API key of the operate scope.

Each notification is cancelled on its own, and its result printed: cancelled, or why not (the
answer the API gives, 409, naming the status: sent and everything after it, failed, cancelled
already, or an attempt in flight). The command exits 1 if any was not cancelled.
  table   one line per notification: ID, RESULT, STATUS, DETAIL
  json    {"results": [{"id", "cancelled", "status", "version", "error", "links"}]}`,
		Example: `  herald notifications cancel 0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e --reason "order withdrawn"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := cancelIDs(args)
			if err != nil {
				return err
			}
			if actor, err = poisonActor(actor); err != nil {
				return err
			}
			if err := attempt.validate(); err != nil {
				return err
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			canceller := handlers.NewCanceller(pool, events.NewLog(pool), attempt.lease())
			by := handlers.Canceler{Actor: actor, Any: true}
			// The operator's invocation is what causes the events it appends.
			ctx := herald.WithCorrelationID(cmd.Context(), "cli-"+uuid.NewString())
			var (
				results []wire.CancelResult
				refused int
			)
			for _, id := range ids {
				n, err := canceller.Cancel(ctx, id, by, reason)
				if herald.ErrorCode(err) == herald.EINTERNAL || herald.ErrorCode(err) == herald.EUNAVAILABLE {
					// Not a refusal: the database failed. What was done so far is printed.
					_ = printCancelResults(cmd.OutOrStdout(), *output, results)
					return fmt.Errorf("cancel %s: %w", id, err)
				}
				if err != nil {
					refused++
				}
				results = append(results, wire.NewCancelResult(id, n, err))
			}
			if err := printCancelResults(cmd.OutOrStdout(), *output, results); err != nil {
				return err
			}
			if refused > 0 {
				return fmt.Errorf("%d of %d notifications not cancelled", refused, len(ids))
			}
			return nil
		},
	}
	s := newSettings(cmd)
	cli.register(s)
	// The same settings as the workers': an attempt open past their lease is abandoned.
	attempt.register(s)
	output = registerFormat(cmd.Flags(), formatTable, formatJSON)
	fs := cmd.Flags()
	fs.StringVar(&actor, "actor", "", "who is cancelling, recorded in the log (default: your OS user name)")
	fs.StringVar(&reason, "reason", "", "why, recorded in the log")
	markArguments(fs, "actor", "reason")
	return cmd
}

// cancelIDs checks the notification ids named, before anything connects, and drops repeats.
func cancelIDs(args []string) ([]string, error) {
	var (
		ids []string
		bad []string
	)
	for _, a := range args {
		id, err := handlers.ParseID(a)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", a))
			continue
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("cancel: not a notification id (a UUID): %s", strings.Join(bad, ", "))
	}
	return ids, nil
}

// printCancelResults prints what cancel did to each notification.
func printCancelResults(w io.Writer, output format, results []wire.CancelResult) error {
	if output == formatJSON {
		if results == nil {
			results = []wire.CancelResult{}
		}
		return writeJSON(w, wire.CancelResults{Results: results})
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tRESULT\tSTATUS\tDETAIL")
	for _, r := range results {
		result, detail := "cancelled", "-"
		if r.Error != nil {
			result, detail = "not cancelled", r.Error.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, result, orDash(r.Status), cell(detail, 0))
	}
	return tw.Flush()
}
