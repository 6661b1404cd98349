package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/wire"
)

// pageSize is how many notifications a page of the search shows.
const pageSize = 50

// formTime is how a datetime-local input sends a time; the console reads it as UTC, and says so.
const formTime = "2006-01-02T15:04"

// parseFormTime reads a time from a form: a datetime-local value (UTC) or RFC 3339.
func parseFormTime(v string) (time.Time, error) {
	for _, layout := range []string{formTime, "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, herald.Errorf(herald.EINVALID, "%q is not a time such as 2026-11-28T10:00 (UTC)", v)
}

// search is the search form as the operator filled it in.
type search struct {
	Status, Type, Recipient, From, To string
}

// notifications serves the search: by status, channel, recipient and time of acceptance, a page
// at a time, newest first, through the API's listing.
func (c *Console) notifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	form := search{Status: q.Get("status"), Type: q.Get("type"), Recipient: strings.TrimSpace(q.Get("recipient")),
		From: q.Get("from"), To: q.Get("to")}
	f := herald.ListFilter{Limit: pageSize, Cursor: q.Get("cursor"), Recipient: form.Recipient}
	fields := map[string]string{}
	var err error
	if form.Status != "" {
		if f.Status, err = herald.ParseStatus(form.Status); err != nil {
			fields["status"] = herald.ErrorMessage(err)
		}
	}
	if form.Type != "" {
		if f.Channel, err = herald.ParseChannel(form.Type); err != nil {
			fields["type"] = herald.ErrorMessage(err)
		}
	}
	if form.From != "" {
		if f.CreatedFrom, err = parseFormTime(form.From); err != nil {
			fields["from"] = herald.ErrorMessage(err)
		}
	}
	if form.To != "" {
		if f.CreatedBefore, err = parseFormTime(form.To); err != nil {
			fields["to"] = herald.ErrorMessage(err)
		}
	}
	data := map[string]any{"Form": form, "Statuses": herald.Statuses, "Channels": herald.Channels, "Fields": fields}
	if len(fields) == 0 {
		list, next, err := c.deps.Reader.List(r.Context(), f)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		data["Notifications"] = wire.NewNotificationList(list, next).Notifications
		if next != "" {
			nq := r.URL.Query()
			nq.Set("cursor", next)
			data["Next"] = Prefix + "/notifications?" + nq.Encode()
		}
	}
	code := http.StatusOK
	if len(fields) > 0 {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "notifications", data)
}

// timelineEntry is one event of a notification, as the timeline shows it: what the history shows
// of it, in words, and who caused it.
type timelineEntry struct {
	wire.HistoryEntry
	Description string
	Actor       string
}

// content is what a notification sends, as its NotificationQueued holds it.
type content struct {
	Subject, Body, HTML string
}

// notification serves one notification: its state (now, or as of a chosen time), every event of
// its stream, and what it sends, shown as text.
func (c *Console) notification(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(chi.URLParam(r, "id"))
	recs, err := c.deps.Reader.Events(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := map[string]any{"ID": id}
	n, err := c.deps.Reader.Status(r.Context(), id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data["Now"] = wire.NewNotification(n)
	if v := r.URL.Query().Get("as_of"); v != "" {
		data["AsOfInput"] = v
		at, err := parseFormTime(v)
		if err != nil {
			data["AsOfProblem"] = herald.ErrorMessage(err)
		} else if then, err := c.deps.Reader.StatusAsOf(r.Context(), id, at); herald.ErrorCode(err) == herald.ENOTFOUND {
			data["AsOfProblem"] = "it did not exist yet at " + at.Format(time.RFC3339)
		} else if err != nil {
			c.fail(w, r, err)
			return
		} else {
			asOf := wire.NewNotificationAsOf(then, at)
			data["AsOf"] = asOf
		}
	}
	var timeline []timelineEntry
	for _, rec := range recs {
		e, err := rec.Event()
		if err != nil {
			c.fail(w, r, err)
			return
		}
		timeline = append(timeline, timelineEntry{HistoryEntry: wire.NewHistoryEntry(events.HistoryEntry(rec, e)),
			Description: events.Describe(e), Actor: rec.Metadata.Actor})
		if q, ok := e.(*events.NotificationQueued); ok {
			data["Content"] = content{Subject: q.RenderedSubject, Body: q.Body, HTML: q.RenderedHTML}
		}
	}
	data["Timeline"] = timeline
	c.render(w, r, http.StatusOK, "notification", data)
}

// notificationsURL is the search's address for a filter, for links from other pages.
func notificationsURL(status herald.Status, channel herald.Channel) string {
	q := url.Values{}
	if status != "" {
		q.Set("status", string(status))
	}
	if channel != "" {
		q.Set("type", string(channel))
	}
	return Prefix + "/notifications?" + q.Encode()
}
