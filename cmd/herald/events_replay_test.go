package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

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

// replayedStream is what replay writes for one notification.
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

// replayedCounts are the summary's counts by status.
type replayedCounts struct {
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

// replayedAll is what replay writes in json for every notification.
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
	out := mustRunHerald(t, append(args, "-o", "json")...)
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

	line := mustRunHerald(t, append(args, "-o", "jsonl")...)
	if strings.Count(line, "\n") != 1 {
		t.Errorf("jsonl of one notification is not one line:\n%s", line)
	}
	var again replayedStream
	if err := json.Unmarshal([]byte(line), &again); err != nil || !cmp.Equal(got, again) {
		t.Errorf("jsonl %s differs from json (%v)", line, err)
	}

	table := mustRunHerald(t, args...)
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
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "replay", "--database-url", l.url, "--stream", l.a, "--as-of", "0s", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Notification.Status != "sent" || got.Notification.Attempts != 2 || got.Notification.ProviderMessageID != "<m@example.com>" || len(got.History) != 5 {
		t.Errorf("as of now: %+v", got)
	}

	// b was accepted after a: at a's first event it did not exist.
	out, err := runHerald(t, "events", "replay", "--database-url", l.url, "--stream", l.b, "--as-of", l.all[0].Time.Format(time.RFC3339Nano), "-o", "json")
	wantErr := fmt.Sprintf("notification %s did not exist at %s", l.b, l.all[0].Time.UTC().Format(time.RFC3339Nano))
	if err == nil || err.Error() != wantErr || out != "" {
		t.Errorf("replay of b before it existed: error %v and output %q, want %q and nothing", err, out, wantErr)
	}
}

func TestEventsReplayAll(t *testing.T) {
	l := newEventsLog(t)
	ids := []string{l.a, l.b}
	slices.Sort(ids)
	tests := []replayAllCase{
		{"before anything", l.all[0].Time.Add(-time.Microsecond), []string{}, nil, replayedCounts{}},
		{"at a's first event", l.all[0].Time, []string{l.a}, map[string]string{l.a: "pending"}, replayedCounts{Pending: 1}},
		{"at a's failed attempt", l.all[3].Time, ids, map[string]string{l.a: "processing", l.b: "pending"}, replayedCounts{Pending: 1, Processing: 1}},
		{"in the future", time.Now().Add(time.Hour), ids, map[string]string{l.a: "sent", l.b: "pending"}, replayedCounts{Pending: 1, Sent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkReplayAll(t, l, tt) })
	}
}

// replayAllCase is an instant to replay every notification to, and what replay should say then.
type replayAllCase struct {
	name   string
	asOf   time.Time
	ids    []string
	status map[string]string
	counts replayedCounts
}

// checkReplayAll replays l's log to tt.asOf in every format and checks each says what tt says.
func checkReplayAll(t *testing.T, l *eventsLog, tt replayAllCase) {
	t.Helper()
	args := []string{"events", "replay", "--database-url", l.url, "--as-of", tt.asOf.Format(time.RFC3339Nano)}

	var all replayedAll
	out := mustRunHerald(t, append(args, "-o", "json")...)
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
	lines := strings.Split(strings.TrimSuffix(mustRunHerald(t, append(args, "-o", "jsonl")...), "\n"), "\n")
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

	checkReplayAllTable(t, args, tt)
}

// checkReplayAllTable checks replay's table: a row per notification, then the counts.
func checkReplayAllTable(t *testing.T, args []string, tt replayAllCase) {
	t.Helper()
	rows := strings.Split(strings.TrimSuffix(mustRunHerald(t, args...), "\n"), "\n")
	if len(rows) != len(tt.ids)+2 || !strings.HasPrefix(rows[0], "ID ") {
		t.Fatalf("table has %d lines, want a header, %d rows and a summary:\n%s", len(rows), len(tt.ids), strings.Join(rows, "\n"))
	}
	for i, id := range tt.ids {
		if !strings.HasPrefix(rows[i+1], id) || !strings.Contains(rows[i+1], " "+tt.status[id]+" ") {
			t.Errorf("row %q, want %s %s", rows[i+1], id, tt.status[id])
		}
	}
	// The summary's wording per count is TestReplayTableSummaryCountsEveryStatus's.
	want := fmt.Sprintf("%d notifications as of %s%s",
		len(tt.ids), tt.asOf.UTC().Format("2006-01-02T15:04:05.000000Z"), replayCounts(tt.counts))
	if rows[len(rows)-1] != want {
		t.Errorf("summary %q, want %q", rows[len(rows)-1], want)
	}
}
