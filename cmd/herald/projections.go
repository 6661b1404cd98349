package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/projections"
)

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

func projectionsStatusCommand() *cobra.Command {
	var (
		db     dbConfig
		logs   logConfig
		output string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's position in the log, the log's head, and the lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			logger, err := logs.logger()
			if err != nil {
				return err
			}
			pool, err := db.cliPool(cmd.Context(), logger)
			if err != nil {
				return err
			}
			defer pool.Close()
			statuses, err := projections.Statuses(cmd.Context(), events.NewLog(pool))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				type row struct {
					Name      string     `json:"name"`
					Position  int64      `json:"position"`
					Head      int64      `json:"head"`
					Lag       int64      `json:"lag"`
					Stopped   string     `json:"stopped,omitempty"`
					StoppedAt *time.Time `json:"stopped_at,omitempty"`
				}
				out := []row{}
				for _, s := range statuses {
					r := row{Name: s.Name, Position: s.Position, Head: s.Head, Lag: s.Lag, Stopped: s.Stopped}
					if s.Stopped != "" {
						r.StoppedAt = &s.StoppedAt
					}
					out = append(out, r)
				}
				return writeJSONTo(w, out)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECTION\tPOSITION\tHEAD\tLAG\tSTATE")
			for _, s := range statuses {
				state := "ok"
				if s.Stopped != "" {
					state = "STOPPED since " + s.StoppedAt.UTC().Format(time.RFC3339) + ": " + s.Stopped
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
		},
	}
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	markArguments(cmd.Flags(), "output")
	return cmd
}

func projectionsRebuildCommand() *cobra.Command {
	var (
		db       dbConfig
		logs     logConfig
		all      bool
		dryRun   bool
		batch    int
		output   string
		progress string
	)
	cmd := &cobra.Command{
		Use:   "rebuild [NAME | --all]",
		Short: "Rebuild read models from the event log and swap them in without downtime",
		Long: `rebuild builds a projection afresh from position 0 of the event log into a table beside the
live one (<name>_rebuild), catches up with the head of the log, and swaps it in atomically: the
live projector pauses for the last stretch and resumes on the new table from where the rebuild
stopped, so nothing is applied twice or skipped, and the API keeps answering throughout.

Before swapping it compares the two tables at the same point of the log and reports rows missing
from the live table, extra in it, and different. --dry-run stops there: it reports the
differences and drops the rebuilt table, leaving the live one as it was. A rebuild that fails
leaves the live table untouched.

Projections: notification_status, notification_history.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return errors.New("name a projection or give --all, not both")
			case !all && len(args) != 1:
				return errors.New("name one projection (notification_status or notification_history), or give --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json"); err != nil {
				return err
			}
			if err := checkOutput(progress, "auto", "bar", "log", "none"); err != nil {
				return fmt.Errorf("--progress: %w", err)
			}
			if batch < 1 {
				return fmt.Errorf("--batch-size %d: want at least 1", batch)
			}
			targets := projections.All()
			if !all {
				p, err := projections.Named(args[0])
				if err != nil {
					return err
				}
				targets = []projections.Rebuildable{p}
			}
			logger, err := logs.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := db.cliPool(ctx, logger)
			if err != nil {
				return err
			}
			defer pool.Close()
			rb := projections.NewRebuilder(pool, events.NewLog(pool), batch, logger)

			var reports []projections.Report
			for _, p := range targets {
				show := newRebuildProgress(progress, cmd.ErrOrStderr(), logger, p.Name())
				report, err := rb.Rebuild(ctx, p, projections.RebuildOptions{DryRun: dryRun, Progress: show.update})
				show.finish()
				if err != nil {
					// Say what was done before the failure: a projection may be swapped in already.
					if len(reports) > 0 {
						_ = writeRebuildReports(cmd.OutOrStdout(), output, reports)
					}
					return err
				}
				reports = append(reports, report)
			}
			return writeRebuildReports(cmd.OutOrStdout(), output, reports)
		},
	}
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	cmd.Flags().BoolVar(&all, "all", false, "rebuild every projection, one after the other")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "build and compare with the live table, but do not swap")
	cmd.Flags().IntVar(&batch, "batch-size", 5000, "events read and applied per transaction")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "summary format: table or json")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress display: bar, log, none, or auto (a bar on a terminal, log lines otherwise)")
	markArguments(cmd.Flags(), "all", "dry-run", "batch-size", "output", "progress")
	return cmd
}

// rebuildProgress shows a rebuild's progress as a bar on a terminal and as log lines elsewhere.
type rebuildProgress struct {
	bar    *progressbar.ProgressBar
	logger *slog.Logger
	every  time.Duration
	last   time.Time
	latest projections.Progress
}

func newRebuildProgress(mode string, w io.Writer, logger *slog.Logger, name string) *rebuildProgress {
	if mode == "auto" {
		mode = "log"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				mode = "bar"
			}
		}
	}
	p := &rebuildProgress{logger: logger, every: 2 * time.Second, last: time.Now()}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	case "none":
		p.logger = nil
	}
	return p
}

func (p *rebuildProgress) update(pr projections.Progress) {
	p.latest = pr
	if p.bar != nil {
		// The bar counts log positions: the head grows while the rebuild runs.
		p.bar.ChangeMax64(max(pr.Head, pr.Position, 1))
		_ = p.bar.Set64(pr.Position)
		return
	}
	if p.logger != nil && time.Since(p.last) >= p.every {
		p.last = time.Now()
		rate := float64(pr.Applied) / max(pr.Elapsed.Seconds(), 0.001)
		p.logger.Info("rebuilding", "projection", pr.Projection, "events", pr.Applied, "position", pr.Position,
			"head", pr.Head, "events_per_second", int64(rate), "eta", eta(pr, rate).Round(time.Second))
	}
}

func eta(pr projections.Progress, rate float64) time.Duration {
	if rate <= 0 || pr.Head <= pr.Position {
		return 0
	}
	return time.Duration(float64(pr.Head-pr.Position) / rate * float64(time.Second))
}

func (p *rebuildProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func writeRebuildReports(w io.Writer, output string, reports []projections.Report) error {
	if output == "json" {
		type diff struct {
			Missing       int64    `json:"missing"`
			Extra         int64    `json:"extra"`
			Different     int64    `json:"different"`
			MissingKeys   []string `json:"missing_keys,omitempty"`
			ExtraKeys     []string `json:"extra_keys,omitempty"`
			DifferentKeys []string `json:"different_keys,omitempty"`
		}
		type row struct {
			Projection      string  `json:"projection"`
			Events          int64   `json:"events"`
			Rows            int64   `json:"rows"`
			Position        int64   `json:"position"`
			DurationSeconds float64 `json:"duration_seconds"`
			EventsPerSecond float64 `json:"events_per_second"`
			Swapped         bool    `json:"swapped"`
			Compared        bool    `json:"compared"`
			LiveLag         int64   `json:"live_lag"`
			LiveGap         string  `json:"live_gap,omitempty"`
			Diff            *diff   `json:"diff,omitempty"`
		}
		out := []row{}
		for _, r := range reports {
			out = append(out, row{
				Projection: r.Projection, Events: r.Events, Rows: r.Rows, Position: r.Position,
				DurationSeconds: r.Duration.Seconds(), EventsPerSecond: rate(r), Swapped: r.Swapped,
				Compared: r.Compared, LiveLag: r.LiveLag, LiveGap: r.LiveGap,
			})
			if r.Compared {
				out[len(out)-1].Diff = &diff{r.Diff.Missing, r.Diff.Extra, r.Diff.Different, r.Diff.MissingKeys, r.Diff.ExtraKeys, r.Diff.DifferentKeys}
			}
		}
		return writeJSONTo(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
			r.Duration.Round(time.Millisecond), rate(r), missing, extra, different, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
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
	return nil
}

func rate(r projections.Report) float64 {
	return float64(r.Events) / max(r.Duration.Seconds(), 0.001)
}

func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("output %q: want %s", got, strings.Join(allowed, " or "))
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
