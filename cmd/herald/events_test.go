package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// eventsClearEnv keeps the HERALD_* variables of whoever runs the tests out of them.
func eventsClearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "HERALD_") {
			t.Setenv(name, "")
		}
	}
}

// runEvents runs herald with args in this process and returns what it wrote to stdout.
func runEvents(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := rootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), err
}

// mustRunEvents runs herald and fails the test if it fails.
func mustRunEvents(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runEvents(t, args...)
	if err != nil {
		t.Fatalf("herald %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// eventsLog is a test database holding two notifications: a, an email that failed once and was
// sent on its second attempt, and b, an SMS still pending, whose events interleave with a's.
type eventsLog struct {
	url  string
	a, b string
	// all is every event as recorded, in log order: a1 b1 a2 a3 a4 a5.
	all []events.Recorded
}

func newEventsLog(t *testing.T) *eventsLog {
	t.Helper()
	eventsClearEnv(t)
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	l := &eventsLog{url: db.URL, a: uuid.NewString(), b: uuid.NewString()}
	steps := []struct {
		stream string
		event  events.Event
		actor  string
	}{
		{l.a, &events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi",
			Body: "Hi", RenderedSubject: "Welcome"}, "api"},
		{l.b, &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi"}, "api"},
		{l.a, &events.NotificationProcessing{Attempt: 1, Worker: "host/1"}, "worker:host/1"},
		{l.a, &events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"}, "worker:host/1"},
		{l.a, &events.NotificationProcessing{Attempt: 2, Worker: "host/2"}, "worker:host/2"},
		{l.a, &events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"}, "worker:host/2"},
	}
	versions := map[string]int64{}
	for _, s := range steps {
		recs, err := log.Append(t.Context(), s.stream, versions[s.stream], events.Metadata{Actor: s.actor}, s.event)
		if err != nil {
			t.Fatal(err)
		}
		versions[s.stream]++
		if n := len(l.all); n > 0 && !recs[0].Time.After(l.all[n-1].Time) {
			t.Fatalf("event %d recorded at %s, not after the one before at %s", n, recs[0].Time, l.all[n-1].Time)
		}
		l.all = append(l.all, recs...)
	}
	return l
}

func (l *eventsLog) positions(keep func(events.Recorded) bool) []int64 {
	out := []int64{}
	for _, r := range l.all {
		if keep(r) {
			out = append(out, r.Position)
		}
	}
	return out
}

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

func decodeJSONL[T any](t *testing.T, out string) []T {
	t.Helper()
	list := []T{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var v T
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		list = append(list, v)
	}
	return list
}

func TestEventsListFormats(t *testing.T) {
	l := newEventsLog(t)

	jsonl := mustRunEvents(t, "events", "list", "--database-url", l.url, "-o", "jsonl")
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

	js := mustRunEvents(t, "events", "list", "--database-url", l.url, "-o", "json")
	var array []listedEvent
	if err := json.Unmarshal([]byte(js), &array); err != nil {
		t.Fatalf("json output is not one array: %v\n%s", err, js)
	}
	if diff := cmp.Diff(lines, array); diff != "" {
		t.Errorf("json and jsonl differ (-jsonl +json):\n%s", diff)
	}

	table := mustRunEvents(t, "events", "list", "--database-url", l.url)
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

	// Nothing selected: an empty table, no lines, an empty array.
	unknown := uuid.NewString()
	for format, want := range map[string]string{
		"table": "POSITION  TIME  STREAM  VERSION  TYPE  ACTOR  DATA\n",
		"jsonl": "",
		"json":  "[]\n",
	} {
		if got := mustRunEvents(t, "events", "list", "--database-url", l.url, "--stream", unknown, "-o", format); got != want {
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
			for _, e := range decodeJSONL[listedEvent](t, mustRunEvents(t, args...)) {
				got = append(got, e.Position)
			}
			if diff := cmp.Diff(l.positions(tt.keep), got); diff != "" {
				t.Errorf("positions listed (-want +got):\n%s", diff)
			}
		})
	}

}

// What one invocation reads is said by its arguments, which have no environment variable: one
// left set would silently narrow every later listing. Only the settings (database, logs) do.
func TestEventsArgumentsHaveNoEnvironmentVariable(t *testing.T) {
	eventsClearEnv(t)
	settings := []string{"database-url", "database-max-conns", "log-level", "log-format"}
	for sub, args := range map[string][]string{
		"list":   {"stream", "type", "from-position", "to-position", "since", "until", "limit", "output"},
		"replay": {"as-of", "stream", "output"},
	} {
		cmd, _, err := rootCommand().Find([]string{"events", sub})
		if err != nil {
			t.Fatal(err)
		}
		var gotArgs, gotSettings []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			_, arg := f.Annotations[argumentAnnotation]
			hasEnv := strings.Contains(f.Usage, "[$HERALD_")
			switch {
			case f.Name == "help":
			case arg && !hasEnv:
				gotArgs = append(gotArgs, f.Name)
			case !arg && hasEnv:
				gotSettings = append(gotSettings, f.Name)
			default:
				t.Errorf("events %s --%s: argument %t, environment variable %t", sub, f.Name, arg, hasEnv)
			}
		})
		slices.Sort(args)
		slices.Sort(settings)
		slices.Sort(gotSettings)
		if !slices.Equal(gotArgs, args) || !slices.Equal(gotSettings, settings) {
			t.Errorf("events %s: arguments %v and settings %v, want %v and %v", sub, gotArgs, gotSettings, args, settings)
		}
	}
	// Set or not, a variable of that name changes nothing.
	l := newEventsLog(t)
	t.Setenv("HERALD_EVENTS_OUTPUT", "jsonl")
	t.Setenv("HERALD_EVENTS_TYPE", "NotificationSent")
	out := mustRunEvents(t, "events", "list", "--database-url", l.url)
	if !strings.HasPrefix(out, "POSITION") || strings.Count(out, "\n") != len(l.all)+1 {
		t.Errorf("with HERALD_EVENTS_* set, list wrote:\n%s", out)
	}
}

// replayed is a notification as replay writes it: the API's status as of the instant.
type replayed struct {
	ID                string    `json:"id"`
	Type              string    `json:"type"`
	Recipient         string    `json:"recipient"`
	Status            string    `json:"status"`
	Attempts          int       `json:"attempts"`
	LastError         string    `json:"last_error"`
	Provider          string    `json:"provider"`
	ProviderMessageID string    `json:"provider_message_id"`
	Version           int64     `json:"version"`
	Position          int64     `json:"position"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	AsOf              time.Time `json:"as_of"`
	Links             struct {
		Status  string `json:"status"`
		History string `json:"history"`
		Events  string `json:"events"`
	} `json:"links"`
}

type replayedStream struct {
	AsOf         time.Time `json:"as_of"`
	Notification replayed  `json:"notification"`
	History      []struct {
		Version           int64     `json:"version"`
		Position          int64     `json:"position"`
		Event             string    `json:"event"`
		Status            string    `json:"status"`
		Attempt           int       `json:"attempt"`
		Provider          string    `json:"provider"`
		ProviderMessageID string    `json:"provider_message_id"`
		Error             string    `json:"error"`
		Actor             string    `json:"actor"`
		At                time.Time `json:"at"`
	} `json:"history"`
}

type replayedCounts struct {
	Pending    int `json:"pending"`
	Processing int `json:"processing"`
	Sent       int `json:"sent"`
	Failed     int `json:"failed"`
}

type replayedAll struct {
	AsOf          time.Time  `json:"as_of"`
	Notifications []replayed `json:"notifications"`
	Summary       struct {
		Total    int            `json:"total"`
		ByStatus replayedCounts `json:"by_status"`
	} `json:"summary"`
}

func TestEventsReplayOneNotification(t *testing.T) {
	l := newEventsLog(t)
	asOf := l.all[3].Time // a's failed first attempt
	args := []string{"events", "replay", "--database-url", l.url, "--stream", l.a, "--as-of", asOf.Format(time.RFC3339Nano)}

	var got replayedStream
	out := mustRunEvents(t, append(args, "-o", "json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	n := got.Notification
	if !got.AsOf.Equal(asOf) || n.ID != l.a || n.Type != "email" || n.Recipient != "ada@example.com" || n.Status != "processing" ||
		n.Attempts != 1 || n.LastError != "421 try later" || n.Provider != "smtp" || n.Version != 3 ||
		n.Position != l.all[3].Position || !n.UpdatedAt.Equal(asOf) || !n.CreatedAt.Equal(l.all[0].Time) ||
		!n.AsOf.Equal(asOf) || n.Links.Status != "/api/v1/notifications/"+l.a+"/status" {
		t.Errorf("as of a's failed attempt: %+v", got)
	}
	var story []string
	for _, h := range got.History {
		story = append(story, fmt.Sprintf("v%d %s %s %d %s", h.Version, h.Event, h.Status, h.Attempt, h.Error))
	}
	want := []string{"v1 NotificationQueued pending 0 ", "v2 NotificationProcessing processing 1 ",
		"v3 DeliveryAttemptFailed processing 1 421 try later"}
	if diff := cmp.Diff(want, story); diff != "" {
		t.Errorf("history up to the instant (-want +got):\n%s", diff)
	}

	line := mustRunEvents(t, append(args, "-o", "jsonl")...)
	if strings.Count(line, "\n") != 1 {
		t.Errorf("jsonl of one notification is not one line:\n%s", line)
	}
	var again replayedStream
	if err := json.Unmarshal([]byte(line), &again); err != nil || !cmp.Equal(got, again) {
		t.Errorf("jsonl %s differs from json (%v)", line, err)
	}

	table := mustRunEvents(t, args...)
	for _, want := range []string{"notification " + l.a, "status processing", "last error 421 try later", "attempts 1",
		"VERSION AT EVENT STATUS ATTEMPT ACTOR DETAIL",
		"3 " + asOf.UTC().Format("2006-01-02T15:04:05.000000Z") + " DeliveryAttemptFailed processing 1 worker:host/1 via smtp, error: 421 try later"} {
		if !strings.Contains(squeezeSpaces(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "NotificationSent") {
		t.Errorf("table shows an event after the instant:\n%s", table)
	}

	// Now: sent, on its second attempt; a duration means that long ago.
	if err := json.Unmarshal([]byte(mustRunEvents(t, "events", "replay", "--database-url", l.url, "--stream", l.a, "--as-of", "0s", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Notification.Status != "sent" || got.Notification.Attempts != 2 || got.Notification.ProviderMessageID != "<m@example.com>" || len(got.History) != 5 {
		t.Errorf("as of now: %+v", got)
	}

	// b was accepted after a: at a's first event it did not exist.
	out, err := runEvents(t, "events", "replay", "--database-url", l.url, "--stream", l.b, "--as-of", l.all[0].Time.Format(time.RFC3339Nano), "-o", "json")
	wantErr := fmt.Sprintf("notification %s did not exist at %s", l.b, l.all[0].Time.UTC().Format(time.RFC3339Nano))
	if err == nil || err.Error() != wantErr || out != "" {
		t.Errorf("replay of b before it existed: error %v and output %q, want %q and nothing", err, out, wantErr)
	}
}

// squeezeSpaces turns each run of spaces in s into one, so tables compare whatever their widths.
func squeezeSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		lines[i] = strings.Join(strings.Fields(line), " ")
	}
	return strings.Join(lines, "\n")
}

func TestEventsReplayAll(t *testing.T) {
	l := newEventsLog(t)
	ids := []string{l.a, l.b}
	slices.Sort(ids)
	tests := []struct {
		name   string
		asOf   time.Time
		ids    []string
		status map[string]string
		counts replayedCounts
	}{
		{"before anything", l.all[0].Time.Add(-time.Microsecond), []string{}, nil, replayedCounts{}},
		{"at a's first event", l.all[0].Time, []string{l.a}, map[string]string{l.a: "pending"}, replayedCounts{Pending: 1}},
		{"at a's failed attempt", l.all[3].Time, ids, map[string]string{l.a: "processing", l.b: "pending"}, replayedCounts{Pending: 1, Processing: 1}},
		{"in the future", time.Now().Add(time.Hour), ids, map[string]string{l.a: "sent", l.b: "pending"}, replayedCounts{Pending: 1, Sent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"events", "replay", "--database-url", l.url, "--as-of", tt.asOf.Format(time.RFC3339Nano)}

			var all replayedAll
			out := mustRunEvents(t, append(args, "-o", "json")...)
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&all); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			var gotIDs []string
			for _, n := range all.Notifications {
				gotIDs = append(gotIDs, n.ID)
				if n.Status != tt.status[n.ID] {
					t.Errorf("%s is %s, want %s", n.ID, n.Status, tt.status[n.ID])
				}
			}
			if !slices.Equal(gotIDs, tt.ids) {
				t.Errorf("notifications %v, want %v in id order", gotIDs, tt.ids)
			}
			if !all.AsOf.Equal(tt.asOf) || all.Summary.Total != len(tt.ids) || all.Summary.ByStatus != tt.counts {
				t.Errorf("as_of %s, summary %+v; want %s, %d and %+v", all.AsOf, all.Summary, tt.asOf, len(tt.ids), tt.counts)
			}

			// jsonl: the same notifications, one a line, and the summary last.
			lines := strings.Split(strings.TrimSuffix(mustRunEvents(t, append(args, "-o", "jsonl")...), "\n"), "\n")
			notifications := decodeJSONL[replayed](t, strings.Join(lines[:len(lines)-1], "\n"))
			if diff := cmp.Diff(all.Notifications, notifications); diff != "" {
				t.Errorf("jsonl notifications differ from json (-json +jsonl):\n%s", diff)
			}
			var last struct {
				Summary struct {
					AsOf     time.Time      `json:"as_of"`
					Total    int            `json:"total"`
					ByStatus replayedCounts `json:"by_status"`
				} `json:"summary"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Summary.Total != len(tt.ids) ||
				last.Summary.ByStatus != tt.counts || !last.Summary.AsOf.Equal(tt.asOf) {
				t.Errorf("last jsonl line %q (%v), want the summary", lines[len(lines)-1], err)
			}

			// table: a row per notification, then the counts.
			rows := strings.Split(strings.TrimSuffix(mustRunEvents(t, args...), "\n"), "\n")
			if len(rows) != len(tt.ids)+2 || !strings.HasPrefix(rows[0], "ID ") {
				t.Fatalf("table has %d lines, want a header, %d rows and a summary:\n%s", len(rows), len(tt.ids), strings.Join(rows, "\n"))
			}
			for i, id := range tt.ids {
				if !strings.HasPrefix(rows[i+1], id) || !strings.Contains(rows[i+1], " "+tt.status[id]+" ") {
					t.Errorf("row %q, want %s %s", rows[i+1], id, tt.status[id])
				}
			}
			c := tt.counts
			want := fmt.Sprintf("%d notifications as of %s: %d pending, %d processing, %d sent, %d failed",
				len(tt.ids), tt.asOf.UTC().Format("2006-01-02T15:04:05.000000Z"), c.Pending, c.Processing, c.Sent, c.Failed)
			if rows[len(rows)-1] != want {
				t.Errorf("summary %q, want %q", rows[len(rows)-1], want)
			}
		})
	}
}

// Bad flags are refused with a message naming them, before anything is read: the database here
// does not exist, and a command that tried it would fail differently, and later.
func TestEventsRefusesBadFlags(t *testing.T) {
	eventsClearEnv(t)
	nowhere := "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
	id := uuid.NewString()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "--type", "NotificationExploded"}, `--type: unknown event type "NotificationExploded"; the log holds NotificationQueued, NotificationProcessing, NotificationSent`},
		{[]string{"list", "--type", "NotificationSent,sent"}, `--type: unknown event type "sent"`},
		{[]string{"list", "--stream", "ada@example.com"}, `--stream: "ada@example.com" is not a notification id`},
		{[]string{"list", "--from-position", "9", "--to-position", "3"}, "--from-position: 9 is past the end of the range, 3"},
		{[]string{"list", "--from-position", "-1"}, "--from-position: -1"},
		{[]string{"list", "--since", "2026-11-28T10:00:00Z", "--until", "2026-11-28T09:00:00Z"}, "--since: 2026-11-28T10:00:00Z is after the end of the range, 2026-11-28T09:00:00Z"},
		{[]string{"list", "--since", "tomorrow"}, `--since "tomorrow": want an RFC 3339 time such as 2026-11-28T10:00:00Z, or a duration ago such as 90m or 24h`},
		{[]string{"list", "--until", "2026-11-28"}, `--until "2026-11-28": want an RFC 3339 time`},
		{[]string{"list", "--since", "-1h"}, `--since "-1h"`},
		{[]string{"list", "--limit", "-1"}, "--limit: -1"},
		{[]string{"list", "--limit", "ten"}, `invalid argument "ten" for "--limit"`},
		{[]string{"list", "-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table, jsonl or json`},
		{[]string{"list", "extra"}, "unknown command"},
		{[]string{"list", "--stream", "x", "--limit", "-2"}, `--limit: -2: want 0 (no limit) or more; --stream: "x" is not a notification id`},
		{[]string{"replay"}, "--as-of: required"},
		{[]string{"replay", "--stream", id}, "--as-of: required"},
		{[]string{"replay", "--as-of", "last week"}, `--as-of "last week": want an RFC 3339 time`},
		{[]string{"replay", "--as-of", "1h", "--stream", "nope"}, `--stream "nope": not a notification id`},
		{[]string{"replay", "--as-of", "1h", "-o", "csv"}, `invalid argument "csv" for "-o, --output" flag: want table, jsonl or json`},
		{[]string{"replay", "--as-of", "1h", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			start := time.Now()
			out, err := runEvents(t, append(append([]string{"events"}, tt.args...), "--database-url", nowhere)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("wrote %q before failing", out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s: it tried the database first", d)
			}
		})
	}
}

func TestEventsHelp(t *testing.T) {
	eventsClearEnv(t)
	for cmd, wants := range map[string][]string{
		"list": {"table", "jsonl", "json", "duration ago", "inclusive", "read-only",
			"-o, --output", "[$HERALD_DATABASE_URL]", strings.Join(events.Types, ", ")},
		"replay": {"--as-of", "duration ago", "summary", "future", "by_status"},
	} {
		out, err := runEvents(t, "events", cmd, "--help")
		if err != nil {
			t.Fatalf("events %s --help: %v", cmd, err)
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("events %s --help does not mention %q", cmd, want)
			}
		}
	}
}
