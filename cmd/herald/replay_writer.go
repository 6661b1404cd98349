package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/wire"
)

// replayCounts counts notifications per status, in life order.
type replayCounts struct {
	Scheduled   int `json:"scheduled"`
	Pending     int `json:"pending"`
	Processing  int `json:"processing"`
	Sent        int `json:"sent"`
	Delivered   int `json:"delivered"`
	Undelivered int `json:"undelivered"`
	Bounced     int `json:"bounced"`
	Complained  int `json:"complained"`
	Failed      int `json:"failed"`
	Cancelled   int `json:"cancelled"`
}

// count is the counter of status s; nil for a status the summary does not know.
func (c *replayCounts) count(s herald.Status) *int {
	switch s {
	case herald.StatusScheduled:
		return &c.Scheduled
	case herald.StatusPending:
		return &c.Pending
	case herald.StatusProcessing:
		return &c.Processing
	case herald.StatusSent:
		return &c.Sent
	case herald.StatusDelivered:
		return &c.Delivered
	case herald.StatusUndelivered:
		return &c.Undelivered
	case herald.StatusBounced:
		return &c.Bounced
	case herald.StatusComplained:
		return &c.Complained
	case herald.StatusFailed:
		return &c.Failed
	case herald.StatusCancelled:
		return &c.Cancelled
	}
	return nil
}

// add counts one notification of status s.
func (c *replayCounts) add(s herald.Status) {
	if n := c.count(s); n != nil {
		*n++
	}
}

// of is how many notifications of status s were counted.
func (c replayCounts) of(s herald.Status) int {
	if n := c.count(s); n != nil {
		return *n
	}
	return 0
}

// String is the table's summary of the counts: ": 2 pending, 1 cancelled", each status with
// notifications, in life order (herald.Statuses); empty when there are none.
func (c replayCounts) String() string {
	var parts []string
	for _, st := range herald.Statuses {
		if n := c.of(st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// replaySummary closes a replay of every notification: how many there were, by status.
type replaySummary struct {
	AsOf     time.Time    `json:"as_of,omitzero"`
	Total    int          `json:"total"`
	ByStatus replayCounts `json:"by_status"`
}

// replayWriter writes notifications as they are folded, in one of the formats, and the summary
// at the end.
type replayWriter struct {
	stream
	at      time.Time
	summary replaySummary
}

// newReplayWriter returns a writer of the notifications replayed to at, to w in f.
func newReplayWriter(w io.Writer, f format, at time.Time) *replayWriter {
	return &replayWriter{stream: newStream(w, f), at: at.UTC()}
}

// replayTableHeader heads the table of every notification replayed.
const replayTableHeader = "ID\tTYPE\tRECIPIENT\tSTATUS\tATTEMPTS\tVERSION\tUPDATED\tLAST ERROR\n"

// write prints one notification and counts it.
func (o *replayWriter) write(n herald.Notification) error {
	var err error
	switch o.format {
	case formatTable:
		if o.summary.Total == 0 {
			if _, err := io.WriteString(o.table, replayTableHeader); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(o.table, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n.ID, n.Channel, cell(n.Recipient, 60),
			n.Status, n.Attempts, n.Version, logTime(n.UpdatedAt), cell(orDash(n.LastError), 80))
	case formatJSONL:
		err = writeJSONLine(o.buf, wire.NewNotificationAsOf(n, o.at))
	case formatJSON:
		sep := ",\n"
		if o.summary.Total == 0 {
			sep = "\n"
			if err := o.openJSON(); err != nil {
				return err
			}
		}
		if _, err := o.buf.WriteString(sep); err != nil {
			return err
		}
		err = encodeJSON(o.buf, wire.NewNotificationAsOf(n, o.at), "", "")
	}
	if err != nil {
		return err
	}
	o.summary.Total++
	o.summary.ByStatus.add(n.Status)
	return o.row()
}

// openJSON begins the json format's object. It is written with the first notification, or at
// the end of a replay that found none, so a replay that fails at once writes nothing.
func (o *replayWriter) openJSON() error {
	at, err := json.Marshal(o.at)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.buf, `{"as_of":%s,"notifications":[`, at)
	return err
}

// close ends the output of a replay that completed, with its summary.
func (o *replayWriter) close() error {
	switch o.format {
	case formatTable:
		if o.summary.Total == 0 {
			if _, err := io.WriteString(o.table, replayTableHeader); err != nil {
				return err
			}
		}
		if err := o.table.Flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(o.buf, "%d notifications as of %s%s\n", o.summary.Total, logTime(o.at), o.summary.ByStatus); err != nil {
			return err
		}
	case formatJSONL:
		s := o.summary
		s.AsOf = o.at
		if err := writeJSONLine(o.buf, struct {
			Summary replaySummary `json:"summary"`
		}{s}); err != nil {
			return err
		}
	case formatJSON:
		end := "\n"
		if o.summary.Total == 0 {
			end = ""
			if err := o.openJSON(); err != nil {
				return err
			}
		}
		if _, err := o.buf.WriteString(end); err != nil {
			return err
		}
		if _, err := o.buf.WriteString(`],"summary":`); err != nil {
			return err
		}
		if err := encodeJSON(o.buf, o.summary, "", ""); err != nil {
			return err
		}
		if _, err := o.buf.WriteString("}\n"); err != nil {
			return err
		}
	}
	return o.buf.Flush()
}
