package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/webhooks"
)

// webhooksReplayFlags are replay's settings and arguments.
type webhooksReplayFlags struct {
	cli          cliDB
	webhooks     webhookConfig
	fromPosition int64
	since, until string
	types        string
	dryRun       bool
	progress     string
	output       *format
}

// webhooksReplayCommand sends an endpoint's past events again, from this process.
func webhooksReplayCommand() *cobra.Command {
	var f webhooksReplayFlags
	cmd := &cobra.Command{
		Use:   "replay ID (--from-position P | --since TIME) [--until TIME] [--types T,…] [--dry-run]",
		Short: "Send a webhook endpoint's past events again, from this process",
		Long: `replay posts an endpoint's past events again, in log order, each with the id it had (a
receiver that drops what it has seen drops them), up to the newest event when it starts. Say where
it starts: --from-position (1 for the start of the log), --since, or both (both apply). --until
ends it early, --types narrows the endpoint's own event types, --dry-run only counts.

It runs in this process, beside the live delivery, without moving it; a request that fails is
left to the retry schedule like any other, and every request is listed by deliveries. A disabled
endpoint is replayed all the same. It shows its progress (a bar on a terminal) and ends with what
it did: events matched, sent, failed, and the time it took. Ctrl-C stops it after the requests
under way; what they did is recorded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(cmd, args) },
	}
	s := newSettings(cmd)
	f.cli.register(s)
	f.webhooks.register(s)
	fs := cmd.Flags()
	fs.Int64Var(&f.fromPosition, "from-position", 0, "the first log position replayed (1: the start of the log)")
	fs.StringVar(&f.since, "since", "", `replay the events that occurred at or after this time: RFC 3339, or a duration ago ("90m")`)
	fs.StringVar(&f.until, "until", "", `replay the events that occurred at or before this time: RFC 3339, or a duration ago ("90m")`)
	fs.StringVar(&f.types, "types", "", "only these notification event types, comma-separated (within the endpoint's own)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "count the events that would be sent, and send nothing")
	f.output = registerFormat(fs, formatTable, formatJSON)
	registerChoice(fs, &f.progress, "progress", "", "progress display: bar, log, none, or auto (a bar on a terminal, log lines otherwise)",
		"auto", "bar", "log", "none")
	markArguments(fs, "from-position", "since", "until", "types", "dry-run", "progress")
	return cmd
}

// request reads the flags into a replay request.
func (f webhooksReplayFlags) request(cmd *cobra.Command) (webhooks.ReplayRequest, error) {
	fs := cmd.Flags()
	if !fs.Changed("from-position") && !fs.Changed("since") {
		return webhooks.ReplayRequest{}, errors.New("say where the replay starts: --from-position P (1 for the start of the log), --since TIME, or both")
	}
	r := webhooks.ReplayRequest{FromPosition: f.fromPosition, DryRun: f.dryRun}
	var errs []error
	now := time.Now()
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"since", f.since, &r.Since}, {"until", f.until, &r.Until}} {
		if t.value == "" {
			continue
		}
		at, err := eventsInstant(t.flag, t.value, now)
		if err != nil {
			errs = append(errs, err)
		}
		*t.into = at
	}
	for _, t := range strings.Split(f.types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			r.Types = append(r.Types, t)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	if err := r.Validate(); err != nil {
		return r, cliError(err, fieldsAsFlags)
	}
	return r, nil
}

// run replays to the endpoint through a sender of this process, showing the progress, and
// prints the report.
func (f webhooksReplayFlags) run(cmd *cobra.Command, args []string) error {
	r, err := f.request(cmd)
	if err != nil {
		return err
	}
	if err := f.webhooks.validate(); err != nil {
		return err
	}
	schedule, _ := f.webhooks.schedule() // validated
	pool, logger, err := f.cli.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer pool.Close()
	sender := webhooks.NewSender(pool, webhooks.NewEndpoints(pool, f.webhooks.policy()), webhooks.SenderConfig{
		Client: f.webhooks.client(), Schedule: schedule, DisableAfter: f.webhooks.DisableAfter, Logger: logger,
	})
	ctx := herald.WithCorrelationID(cmd.Context(), "cli-"+uuid.NewString())
	show := newReplayProgress(f.progress, cmd.ErrOrStderr(), logger, args[0])
	rep, err := sender.Replay(ctx, args[0], r, f.webhooks.Lanes, show.update)
	show.finish()
	if err != nil {
		if herald.ErrorCode(err) != herald.EINTERNAL {
			return endpointError(err)
		}
		if rep.EndpointID != "" && errors.Is(err, ctx.Err()) {
			p := show.latest
			return fmt.Errorf("replay stopped at position %d of %d: %d events matched, %d sent, %d failed; replay --from-position %d to go on: %w",
				p.Position, p.ToPosition, p.Matched, p.Sent, p.Failed, p.Position+1, err)
		}
		return err
	}
	w := cmd.OutOrStdout()
	if *f.output == formatJSON {
		return writeJSON(w, webhooks.WireReplayReport(rep))
	}
	took := rep.Duration.Round(time.Millisecond)
	if rep.DryRun {
		_, err = fmt.Fprintf(w, "Dry run: %d events of positions %d to %d would be sent to endpoint %s; nothing was sent (%s).\n",
			rep.Matched, rep.FromPosition, rep.ToPosition, rep.EndpointID, took)
		return err
	}
	_, err = fmt.Fprintf(w, "Replayed positions %d to %d to endpoint %s: %d events matched, %d sent, %d failed, in %s.\n",
		rep.FromPosition, rep.ToPosition, rep.EndpointID, rep.Matched, rep.Sent, rep.Failed, took)
	if err == nil && rep.Failed > 0 {
		_, err = fmt.Fprintf(w, "The failed ones are retried on the schedule; herald webhooks deliveries %s --failed lists them.\n", rep.EndpointID)
	}
	return err
}

// replayProgress shows a replay's progress as a bar on a terminal and as log lines elsewhere.
type replayProgress struct {
	bar    *progressbar.ProgressBar
	logger *slog.Logger
	every  time.Duration
	last   time.Time
	start  time.Time
	id     string
	latest webhooks.ReplayProgress
}

// newReplayProgress returns the display of a replay to endpoint id in mode, on w or through
// logger.
func newReplayProgress(mode string, w io.Writer, logger *slog.Logger, id string) *replayProgress {
	if mode == "auto" {
		mode = "log"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				mode = "bar"
			}
		}
	}
	p := &replayProgress{logger: logger, every: 2 * time.Second, last: time.Now(), start: time.Now(), id: id}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowCount(),
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

// update shows pr: on the bar at once (log positions read of those to read, and the counts), as
// a log line at most every p.every.
func (p *replayProgress) update(pr webhooks.ReplayProgress) {
	p.latest = pr
	if p.bar != nil {
		p.bar.ChangeMax64(max(pr.ToPosition, 1))
		p.bar.Describe(fmt.Sprintf("replay: %d matched, %d sent, %d failed", pr.Matched, pr.Sent, pr.Failed))
		_ = p.bar.Set64(pr.Position)
		return
	}
	if p.logger != nil && time.Since(p.last) >= p.every {
		p.last = time.Now()
		p.logger.Info("replaying", "endpoint", p.id, "position", pr.Position, "to_position", pr.ToPosition,
			"matched", pr.Matched, "sent", pr.Sent, "failed", pr.Failed, "elapsed", time.Since(p.start).Round(time.Second))
	}
}

// finish completes the bar, if there is one.
func (p *replayProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
