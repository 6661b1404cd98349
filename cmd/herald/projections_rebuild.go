package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// projectionsRebuildLong is the help of projections rebuild.
const projectionsRebuildLong = `rebuild builds a projection afresh from position 0 of the event log into a table beside the
live one (<name>_rebuild), catches up with the head of the log, and swaps it in atomically: the
live projector pauses for the last stretch and resumes on the new table from where the rebuild
stopped, so nothing is applied twice or skipped, and the API keeps answering throughout.

Before swapping it compares the two tables at the same point of the log and reports rows missing
from the live table, extra in it, and different. --dry-run stops there: it reports the
differences and drops the rebuilt table, leaving the live one as it was. A rebuild that fails
leaves the live table untouched.

Projections: notification_status, notification_history.`

// projectionsRebuildFlags are the flags of projections rebuild.
type projectionsRebuildFlags struct {
	cli      cliDB
	all      bool
	dryRun   bool
	batch    int
	output   *format
	progress string
}

// projectionsRebuildCommand lets an operator rebuild a read model from the log while Herald
// keeps running: after a fix to a projection, or when one stopped at a gap.
func projectionsRebuildCommand() *cobra.Command {
	var f projectionsRebuildFlags
	cmd := &cobra.Command{
		Use:   "rebuild [NAME | --all]",
		Short: "Rebuild read models from the event log and swap them in without downtime",
		Long:  projectionsRebuildLong,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case f.all && len(args) > 0:
				return errors.New("name a projection or give --all, not both")
			case !f.all && len(args) != 1:
				return errors.New("name one projection (notification_status or notification_history), or give --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(cmd, args) },
	}
	f.cli.register(newSettings(cmd))
	fs := cmd.Flags()
	fs.BoolVar(&f.all, "all", false, "rebuild every projection, one after the other")
	fs.BoolVar(&f.dryRun, "dry-run", false, "build and compare with the live table, but do not swap")
	fs.IntVar(&f.batch, "batch-size", 5000, "events read and applied per transaction")
	f.output = registerFormat(fs, formatTable, formatJSON)
	registerChoice(fs, &f.progress, "progress", "", "progress display: bar, log, none, or auto (a bar on a terminal, log lines otherwise)",
		"auto", "bar", "log", "none")
	markArguments(fs, "all", "dry-run", "batch-size", "progress")
	return cmd
}

// run rebuilds the projections asked for one after the other, and reports on each.
func (f projectionsRebuildFlags) run(cmd *cobra.Command, args []string) error {
	if f.batch < 1 {
		return fmt.Errorf("--batch-size %d: want at least 1", f.batch)
	}
	targets := projections.All()
	if !f.all {
		p, err := projections.Named(args[0])
		if err != nil {
			return err
		}
		targets = []projections.Rebuildable{p}
	}
	ctx := cmd.Context()
	pool, logger, err := f.cli.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rb := projections.NewRebuilder(pool, events.NewLog(pool), f.batch, logger)

	var reports []projections.Report
	for _, p := range targets {
		show := newRebuildProgress(f.progress, cmd.ErrOrStderr(), logger, p.Name())
		report, err := rb.Rebuild(ctx, p, projections.RebuildOptions{DryRun: f.dryRun, Progress: show.update})
		show.finish()
		if err != nil {
			// Say what was done before the failure: a projection may be swapped in already.
			if len(reports) > 0 {
				_ = writeRebuildReports(cmd.OutOrStdout(), *f.output, reports)
			}
			return err
		}
		reports = append(reports, report)
	}
	return writeRebuildReports(cmd.OutOrStdout(), *f.output, reports)
}

// writeRebuildReports prints what each rebuild did, in output.
func writeRebuildReports(w io.Writer, output format, reports []projections.Report) error {
	if output == formatJSON {
		out := make([]wire.RebuildReport, 0, len(reports))
		for _, r := range reports {
			out = append(out, wire.NewRebuildReport(r))
		}
		return writeJSON(w, out)
	}
	return printRebuildReports(w, reports)
}

// printRebuildReports prints the reports for people: a row each, then what was not compared and
// examples of the rows that differ.
func printRebuildReports(w io.Writer, reports []projections.Report) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PROJECTION\tEVENTS\tROWS\tPOSITION\tDURATION\tEVENTS/S\tMISSING\tEXTRA\tDIFFERENT\tRESULT")
	for _, r := range reports {
		result := "swapped in"
		if !r.Swapped {
			result = "dry run: live table kept"
		}
		missing, extra, different := "-", "-", "-"
		if r.Compared {
			missing, extra, different = fmt.Sprint(r.Diff.Missing), fmt.Sprint(r.Diff.Extra), fmt.Sprint(r.Diff.Different)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\n", r.Projection, r.Events, r.Rows, r.Position,
			r.Duration.Round(time.Millisecond), wire.RebuildRate(r), missing, extra, different, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		printRebuildNotes(w, r)
	}
	return nil
}

// printRebuildNotes says why a report was not compared, and gives examples of the keys of the
// rows that differ.
func printRebuildNotes(w io.Writer, r projections.Report) {
	if r.LiveGap != "" {
		fmt.Fprintf(w, "%s: not compared: the live table has a gap (%s)\n", r.Projection, r.LiveGap)
	} else if !r.Compared {
		fmt.Fprintf(w, "%s: not compared: the live table was %d events behind the log (more than %d); start the projector and run again to compare\n",
			r.Projection, r.LiveLag, projections.MaxCompareLag)
	}
	for _, g := range []struct {
		what string
		keys []string
	}{{"missing from the live table", r.Diff.MissingKeys}, {"extra in the live table", r.Diff.ExtraKeys}, {"different", r.Diff.DifferentKeys}} {
		if len(g.keys) > 0 {
			fmt.Fprintf(w, "%s: %s, e.g. %s\n", r.Projection, g.what, strings.Join(g.keys, ", "))
		}
	}
}
