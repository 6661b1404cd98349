package console

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// chartMinutes is how far back the overview's chart looks.
const chartMinutes = 60

// breakerStaleAfter marks a worker's breakers stale when it has not written them for this long,
// as herald providers status does by default.
const breakerStaleAfter = time.Minute

// countRow is one channel's notifications by status, with links to the search.
type countRow struct {
	Channel string
	Cells   []countCell
	Total   int64
}

type countCell struct {
	N    int64
	Link string
}

// overview serves the landing page: notifications by status and channel, sent and failed per
// minute, the queues, the read models' lag and the providers' breakers.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	counts, err := c.deps.Reader.Counts(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	minutes, err := c.deps.Reader.Throughput(ctx, chartMinutes)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	statuses, err := c.deps.Rebuilds.Statuses(ctx)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := map[string]any{
		"Statuses":    herald.Statuses,
		"Counts":      countTable(counts),
		"Chart":       newChart(minutes),
		"Projections": wire.NewProjectionStatuses(statuses),
		// Refreshing is asked for, never the default: each refresh is a use of the session, and
		// a tab left open would otherwise keep it alive past the idle expiry.
		"Refresh": r.URL.Query().Get("refresh") == "30",
	}
	if c.deps.Depths != nil {
		depths, err := c.deps.Depths(ctx)
		if err != nil {
			data["DepthsProblem"] = herald.ErrorMessage(err)
		} else {
			data["Depths"] = depths
		}
	}
	if c.deps.Breakers != nil {
		rows, err := c.deps.Breakers.List(ctx, breakerStaleAfter)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data["Breakers"] = rows
	}
	c.render(w, r, http.StatusOK, "overview", data)
}

// countTable lays counts out as one row per channel and one column per status.
func countTable(counts []projections.Count) []countRow {
	var rows []countRow
	for _, ch := range herald.Channels {
		row := countRow{Channel: string(ch)}
		for _, st := range herald.Statuses {
			cell := countCell{Link: notificationsURL(st, ch)}
			i := slices.IndexFunc(counts, func(c projections.Count) bool { return c.Channel == ch && c.Status == st })
			if i >= 0 {
				cell.N = counts[i].N
			}
			row.Total += cell.N
			row.Cells = append(row.Cells, cell)
		}
		rows = append(rows, row)
	}
	return rows
}

// chart is the sent and failed notifications per minute, drawn as SVG bars by the template: each
// minute a pair of bars, scaled to the busiest minute.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int64
	From, To      string
	Sent, Failed  int64
}

type bar struct {
	X, Width, Y, Height int
	Fill                string
	Title               string
}

const (
	chartWidth  = 720
	chartHeight = 160
)

func newChart(minutes []projections.Minute) chart {
	ch := chart{Width: chartWidth, Height: chartHeight}
	for _, m := range minutes {
		ch.Max = max(ch.Max, m.Sent, m.Failed)
		ch.Sent += m.Sent
		ch.Failed += m.Failed
	}
	if len(minutes) == 0 {
		return ch
	}
	ch.From, ch.To = minutes[0].At.UTC().Format("15:04"), minutes[len(minutes)-1].At.UTC().Format("15:04")
	slot := chartWidth / len(minutes)
	scale := func(n int64) int {
		if ch.Max == 0 {
			return 0
		}
		return int(n * int64(chartHeight-10) / ch.Max)
	}
	for i, m := range minutes {
		x := i * slot
		at := m.At.UTC().Format("15:04")
		if h := scale(m.Sent); h > 0 {
			ch.Bars = append(ch.Bars, bar{X: x, Width: slot / 2, Y: chartHeight - h, Height: h, Fill: "#2e7d32",
				Title: fmt.Sprintf("%s: %d sent", at, m.Sent)})
		}
		if h := scale(m.Failed); h > 0 {
			ch.Bars = append(ch.Bars, bar{X: x + slot/2, Width: slot / 2, Y: chartHeight - h, Height: h, Fill: "#c62828",
				Title: fmt.Sprintf("%s: %d failed", at, m.Failed)})
		}
	}
	return ch
}
