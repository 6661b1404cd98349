package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/herald-notify/herald/projections"
	"github.com/schollz/progressbar/v3"
)

// rebuildProgress shows a rebuild's progress as a bar on a terminal and as log lines elsewhere.
type rebuildProgress struct {
	bar    *progressbar.ProgressBar
	logger *slog.Logger
	every  time.Duration
	last   time.Time
	latest projections.Progress
}

// newRebuildProgress returns the display of the rebuild of projection name in mode, on w or
// through logger.
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

// update shows pr: on the bar at once, as a log line at most every p.every.
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

// eta is how long the rest of a rebuild should take at rate events a second.
func eta(pr projections.Progress, rate float64) time.Duration {
	if rate <= 0 || pr.Head <= pr.Position {
		return 0
	}
	return time.Duration(float64(pr.Head-pr.Position) / rate * float64(time.Second))
}

// finish completes the bar, if there is one.
func (p *rebuildProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
