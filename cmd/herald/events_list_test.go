package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
)

// listedEvent is an event as list writes it in jsonl and json.
type listedEvent struct {
	ID       string         `json:"id"`
	StreamID string         `json:"stream_id"`
	Version  int64          `json:"version"`
	Position int64          `json:"position"`
	Type     string         `json:"type"`
	Time     time.Time      `json:"time"`
	Data     map[string]any `json:"data"`
	Metadata map[string]any `json:"metadata"`
}

func TestEventsListFormats(t *testing.T) {
	l := newEventsLog(t)

	jsonl := mustRunHerald(t, "events", "list", "--database-url", l.url, "-o", "jsonl")
	lines := decodeJSONL[listedEvent](t, jsonl)
	if len(lines) != len(l.all) || strings.Count(jsonl, "\n") != len(l.all) {
		t.Fatalf("jsonl has %d events on %d lines, want %d:\n%s", len(lines), strings.Count(jsonl, "\n"), len(l.all), jsonl)
	}
	for i, got := range lines {
		r := l.all[i]
		if got.ID != r.ID || got.StreamID != r.StreamID || got.Version != r.Version || got.Position != r.Position ||
			got.Type != r.Type || !got.Time.Equal(r.Time) || got.Time.Location() != time.UTC || got.Metadata["actor"] != r.Metadata.Actor {
			t.Errorf("line %d = %+v, want %+v", i, got, r)
		}
	}
	if got := lines[3].Data; got["error"] != "421 try later" || got["attempt"] != 1.0 || got["provider"] != "smtp" {
		t.Errorf("data of the failed attempt = %v", got)
	}
	if !strings.Contains(jsonl, `"provider_message_id":"<m@example.com>"`) {
		t.Errorf("jsonl escapes the message id's angle brackets:\n%s", jsonl)
	}

	js := mustRunHerald(t, "events", "list", "--database-url", l.url, "-o", "json")
	var array []listedEvent
	if err := json.Unmarshal([]byte(js), &array); err != nil {
		t.Fatalf("json output is not one array: %v\n%s", err, js)
	}
	if diff := cmp.Diff(lines, array); diff != "" {
		t.Errorf("json and jsonl differ (-jsonl +json):\n%s", diff)
	}

	table := mustRunHerald(t, "events", "list", "--database-url", l.url)
	rows := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(rows) != len(l.all)+1 {
		t.Fatalf("table has %d lines, want a header and %d rows:\n%s", len(rows), len(l.all), table)
	}
	if got := strings.Fields(rows[0]); !slices.Equal(got, []string{"POSITION", "TIME", "STREAM", "VERSION", "TYPE", "ACTOR", "DATA"}) {
		t.Errorf("header %q", rows[0])
	}
	wantData := []string{
		`email to ada@example.com: "Welcome"`,
		"sms to +14155550123",
		"attempt 1 by host/1",
		"attempt 1 failed via smtp: 421 try later",
		"attempt 2 by host/2",
		"attempt 2 sent via smtp, id <m@example.com>",
	}
	for i, row := range rows[1:] {
		r := l.all[i]
		for _, want := range []string{fmt.Sprint(r.Position), r.StreamID, r.Type, r.Metadata.Actor, wantData[i],
			r.Time.UTC().Format("2006-01-02T15:04:05.000000Z")} {
			if !strings.Contains(row, want) {
				t.Errorf("row %d %q lacks %q", i+1, row, want)
			}
		}
		// Aligned: each row's type starts under TYPE, its data under DATA.
		if strings.Index(row, r.Type) != strings.Index(rows[0], "TYPE") || strings.Index(row, wantData[i]) != strings.Index(rows[0], "DATA") {
			t.Errorf("row %d is not aligned with the header:\n%s\n%s", i+1, rows[0], row)
		}
	}

	checkEventsListEmpty(t, l)
}

// checkEventsListEmpty checks what list prints when nothing is selected: an empty table, no
// lines, an empty array.
func checkEventsListEmpty(t *testing.T, l *eventsLog) {
	t.Helper()
	unknown := uuid.NewString()
	for format, want := range map[string]string{
		"table": "POSITION  TIME  STREAM  VERSION  TYPE  ACTOR  DATA\n",
		"jsonl": "",
		"json":  "[]\n",
	} {
		if got := mustRunHerald(t, "events", "list", "--database-url", l.url, "--stream", unknown, "-o", format); got != want {
			t.Errorf("-o %s of nothing = %q, want %q", format, got, want)
		}
	}
}

func TestEventsListFilters(t *testing.T) {
	l := newEventsLog(t)
	at := func(i int) string { return l.all[i].Time.Format(time.RFC3339Nano) }
	pos := func(i int) string { return fmt.Sprint(l.all[i].Position) }
	tests := []struct {
		args []string
		keep func(events.Recorded) bool
	}{
		{nil, func(events.Recorded) bool { return true }},
		{[]string{"--stream", l.a}, func(r events.Recorded) bool { return r.StreamID == l.a }},
		{[]string{"--stream", strings.ToUpper(l.b)}, func(r events.Recorded) bool { return r.StreamID == l.b }},
		{[]string{"--type", "NotificationProcessing"}, func(r events.Recorded) bool { return r.Type == events.TypeNotificationProcessing }},
		{[]string{"--type", "NotificationQueued,NotificationSent"},
			func(r events.Recorded) bool {
				return r.Type == events.TypeNotificationQueued || r.Type == events.TypeNotificationSent
			}},
		{[]string{"--type", "NotificationQueued", "--type", "NotificationSent"},
			func(r events.Recorded) bool {
				return r.Type == events.TypeNotificationQueued || r.Type == events.TypeNotificationSent
			}},
		{[]string{"--from-position", pos(2), "--to-position", pos(4)},
			func(r events.Recorded) bool {
				return r.Position >= l.all[2].Position && r.Position <= l.all[4].Position
			}},
		{[]string{"--from-position", pos(5)}, func(r events.Recorded) bool { return r.Position >= l.all[5].Position }},
		{[]string{"--since", at(2), "--until", at(4)},
			func(r events.Recorded) bool { return !r.Time.Before(l.all[2].Time) && !r.Time.After(l.all[4].Time) }},
		{[]string{"--until", at(0)}, func(r events.Recorded) bool { return r.Position == l.all[0].Position }},
		// Durations count back from now: everything was appended within the last hour...
		{[]string{"--since", "1h"}, func(events.Recorded) bool { return true }},
		// ...and nothing an hour ago or before.
		{[]string{"--until", "1h"}, func(events.Recorded) bool { return false }},
		{[]string{"--limit", "2"}, func(r events.Recorded) bool { return r.Position <= l.all[1].Position }},
		{[]string{"--limit", "0"}, func(events.Recorded) bool { return true }},
		{[]string{"--stream", l.a, "--type", "NotificationProcessing", "--limit", "1"},
			func(r events.Recorded) bool { return r.Position == l.all[2].Position }},
		{[]string{"--stream", l.a, "--since", at(1), "--to-position", pos(4)},
			func(r events.Recorded) bool {
				return r.StreamID == l.a && r.Position >= l.all[2].Position && r.Position <= l.all[4].Position
			}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"events", "list", "--database-url", l.url, "-o", "jsonl"}, tt.args...)
			got := []int64{}
			for _, e := range decodeJSONL[listedEvent](t, mustRunHerald(t, args...)) {
				got = append(got, e.Position)
			}
			if diff := cmp.Diff(l.positions(tt.keep), got); diff != "" {
				t.Errorf("positions listed (-want +got):\n%s", diff)
			}
		})
	}

}
