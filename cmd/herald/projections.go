package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// projectionsCommand groups the operators' commands on the read models: where they stand, and
// building them afresh.
func projectionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Inspect and rebuild the read models (notification_status, notification_history)",
		Long: `The read models are folds of the event log. "herald projections status" shows where each one
stands in the log; "herald projections rebuild" builds them afresh from the log and swaps them in
while Herald keeps running.`,
	}
	cmd.AddCommand(projectionsStatusCommand(), projectionsRebuildCommand())
	return cmd
}

// projectionsStatusCommand shows an operator how far each read model lags the log, and which
// one stopped and needs a rebuild.
func projectionsStatusCommand() *cobra.Command {
	var (
		cli    cliDB
		output *format
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's position in the log, the log's head, and the lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			statuses, err := projections.Statuses(cmd.Context(), events.NewLog(pool))
			if err != nil {
				return err
			}
			if *output == formatJSON {
				err = writeJSON(cmd.OutOrStdout(), wire.NewProjectionStatuses(statuses))
			} else {
				err = printProjectionStatuses(cmd.OutOrStdout(), statuses)
			}
			if err != nil {
				return err
			}
			return stoppedProjections(statuses)
		},
	}
	cli.register(newSettings(cmd))
	output = registerFormat(cmd.Flags(), formatTable, formatJSON)
	return cmd
}

// stoppedProjections fails when a projection stopped, so that a script or a monitor running
// "herald projections status" sees a read model that has stopped following the log in the exit
// status, not only in what is printed.
func stoppedProjections(statuses []projections.ProjectionStatus) error {
	var stopped []string
	for _, s := range statuses {
		if s.Stopped != "" {
			stopped = append(stopped, s.Name)
		}
	}
	if len(stopped) == 0 {
		return nil
	}
	return fmt.Errorf("stopped at a gap, not following the log: %s (rebuild with \"herald projections rebuild\")", strings.Join(stopped, ", "))
}

// printProjectionStatuses prints statuses for people, and what to do about a projection that
// stopped.
func printProjectionStatuses(w io.Writer, statuses []projections.ProjectionStatus) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PROJECTION\tPOSITION\tHEAD\tLAG\tSTATE")
	for _, s := range statuses {
		state := "ok"
		if s.Stopped != "" {
			state = "STOPPED since " + tableTime(s.StoppedAt) + ": " + cell(s.Stopped, 0)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Name, s.Position, s.Head, s.Lag, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range statuses {
		if s.Stopped != "" {
			fmt.Fprintf(w, "%s stopped at a gap in a stream's versions: rebuild it with \"herald projections rebuild %s\"\n", s.Name, s.Name)
		}
	}
	return nil
}
