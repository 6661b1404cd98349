package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// asJSON is v as users receive it, decoded into plain maps so that a test sees the fields and
// not the Go type.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestShapesLeaveOutWhatIsUnknownAndNeverPrintNull(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		got  any
		want string
	}{{
		name: "a notification whose position is not known omits it, and its times are UTC",
		got: wire.NewNotification(herald.Notification{ID: "n1", Channel: herald.ChannelSMS, Recipient: "+1",
			Status: herald.StatusPending, Version: 1, CreatedAt: at, UpdatedAt: at}),
		want: `{"id":"n1","type":"sms","recipient":"+1","status":"pending","attempts":0,"version":1,
			"created_at":"2026-12-05T09:00:00Z","updated_at":"2026-12-05T09:00:00Z",
			"links":{"status":"/api/v1/notifications/n1/status","history":"/api/v1/notifications/n1/history","events":"/api/v1/notifications/n1/events"}}`,
	}, {
		name: "a parked message of a notification the log does not know",
		got:  wire.NewParked(handlers.Parked{Message: handlers.ParkedMessage{MessageID: "m", Unreadable: "not JSON"}}),
		want: `{"id":"","type":"","recipient":"","status":"","reason":"","error":"","attempts":0,"failed_at":null,
			"stale":false,"message_id":"m","unreadable":"not JSON"}`,
	}, {
		name: "detail of an unknown notification: null notification, empty lists and headers",
		got:  wire.NewParkedDetail("n2", handlers.ParkedDetail{Messages: []handlers.Parked{{}}}),
		want: `{"id":"n2","notification":null,"history":[],"parked":[{"message_id":"","correlation_id":"",
			"parked_because":"","queue":"","handler":"","deliveries":0,"timestamp":null,"stale":false,"headers":{},"body":""}]}`,
	}, {
		name: "a running rebuild job has no report and no end",
		got:  wire.NewRebuildJob(projections.Job{ID: "j", Projection: "p", State: projections.JobRunning, StartedAt: at, Report: projections.Report{Events: 9}}),
		want: `{"id":"j","projection":"p","dry_run":false,"state":"running","started_at":"2026-12-05T09:00:00Z",
			"progress":{"applied":0,"position":0,"head":0},"links":{"self":"/api/v1/projections/rebuilds/j"}}`,
	}, {
		name: "no projections is an empty list",
		got:  wire.NewProjectionStatuses(nil),
		want: `[]`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatalf("want: %v", err)
			}
			if diff := cmp.Diff(want, asJSON(t, tc.got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRebuildReportCarriesTheComparison(t *testing.T) {
	r := projections.Report{Projection: "notification_status", Events: 500, Duration: 250 * time.Millisecond,
		Compared: true, Diff: projections.Diff{Missing: 1, MissingKeys: []string{"k"}}}
	got := wire.NewRebuildReport(r)
	if got.EventsPerSecond != 2000 || got.Missing != 1 || len(got.MissingKeys) != 1 || got.DurationSeconds != 0.25 {
		t.Fatalf("report %+v", got)
	}
	job := wire.NewRebuildJob(projections.Job{State: projections.JobSucceeded, Report: r})
	if job.Report == nil {
		t.Fatal("a succeeded job has no report")
	}
	if diff := cmp.Diff(got, *job.Report); diff != "" {
		t.Fatalf("a succeeded job's report (-want +got):\n%s", diff)
	}
}
