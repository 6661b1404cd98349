package http_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/projections"
)

type jobAnswer struct {
	ID         string `json:"id"`
	Projection string `json:"projection"`
	DryRun     bool   `json:"dry_run"`
	State      string `json:"state"`
	Error      string `json:"error"`
	Report     *struct {
		Events  int64 `json:"events"`
		Rows    int64 `json:"rows"`
		Swapped bool  `json:"swapped"`
	} `json:"report"`
	Links struct {
		Self string `json:"self"`
	} `json:"links"`
}

// An operator rebuilds a projection over HTTP: the job runs in the background and reports.
func TestRebuildOverHTTP(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := log.Append(ctx, uuid.NewString(), 0, events.Metadata{},
			&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "c", Body: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.WaitLogVisible(t, db, 5)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs := projections.NewJobs(ctx, projections.NewRebuilder(db.Pool, log, 100, discard), log)
	srv := heraldhttp.NewServer(heraldhttp.Config{}, nil, nil, nil, discard).WithRebuilds(jobs)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	r := doRequest(t, ts.URL, http.MethodPost, "/api/v1/projections/notification_status/rebuild", `{"dry_run": true}`, jsonHeader())
	if r.status != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	job := decodeJSON[jobAnswer](t, r)
	if job.Projection != "notification_status" || !job.DryRun || r.header.Get("Location") != job.Links.Self {
		t.Fatalf("start answered %+v (Location %q)", job, r.header.Get("Location"))
	}
	heraldtest.Eventually(t, 30*time.Second, "the rebuild job to end", func() (bool, error) {
		job = decodeJSON[jobAnswer](t, doRequest(t, ts.URL, http.MethodGet, job.Links.Self, "", nil))
		return job.State != "running", nil
	})
	if job.State != "succeeded" || job.Report == nil || job.Report.Rows != 5 || job.Report.Swapped {
		t.Errorf("dry run ended %+v, report %+v; want succeeded with 5 rows, not swapped", job, job.Report)
	}

	status := decodeJSON[struct {
		Projections []struct {
			Name string `json:"name"`
			Head int64  `json:"head"`
		} `json:"projections"`
		Rebuilds []jobAnswer `json:"rebuilds"`
	}](t, doRequest(t, ts.URL, http.MethodGet, "/api/v1/projections", "", nil))
	if len(status.Projections) != 2 || status.Projections[0].Head == 0 || len(status.Rebuilds) != 1 || status.Rebuilds[0].ID != job.ID {
		t.Errorf("GET /api/v1/projections = %+v", status)
	}

	for _, tt := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/projections/nothing/rebuild", "", http.StatusNotFound},
		{"/api/v1/projections/notification_status/rebuild", `{"dry_run": "yes"}`, http.StatusUnprocessableEntity},
		{"/api/v1/projections/notification_status/rebuild", `{"force": true}`, http.StatusUnprocessableEntity},
	} {
		if r := doRequest(t, ts.URL, http.MethodPost, tt.path, tt.body, jsonHeader()); r.status != tt.want {
			t.Errorf("POST %s %s: %d %s, want %d", tt.path, tt.body, r.status, r.body, tt.want)
		}
	}
	if r := doRequest(t, ts.URL, http.MethodGet, "/api/v1/projections/rebuilds/"+uuid.NewString(), "", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown job: %d, want 404", r.status)
	}
}

// A projection stopped at a gap in a stream's versions says so in GET /api/v1/projections.
func TestProjectionsShowAStop(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	reason := "notification_history: stream 0193: event at position 7 is version 4, but the read model is at version 2"
	if err := log.SetConsumerCursor(ctx, nil, "notification_history", events.Cursor{}); err != nil {
		t.Fatal(err)
	}
	if err := log.StopConsumer(ctx, nil, "notification_history", reason); err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs := projections.NewJobs(ctx, projections.NewRebuilder(db.Pool, log, 100, discard), log)
	ts := httptest.NewServer(heraldhttp.NewServer(heraldhttp.Config{}, nil, nil, nil, discard).WithRebuilds(jobs).Handler())
	defer ts.Close()

	status := decodeJSON[struct {
		Projections []struct {
			Name      string     `json:"name"`
			Stopped   string     `json:"stopped"`
			StoppedAt *time.Time `json:"stopped_at"`
		} `json:"projections"`
	}](t, doRequest(t, ts.URL, http.MethodGet, "/api/v1/projections", "", nil))
	got := map[string]string{}
	for _, p := range status.Projections {
		got[p.Name] = p.Stopped
		if (p.Stopped != "") != (p.StoppedAt != nil) {
			t.Errorf("%s: stopped %q at %v: want both or neither", p.Name, p.Stopped, p.StoppedAt)
		}
	}
	if got["notification_history"] != reason || got["notification_status"] != "" || len(got) != 2 {
		t.Errorf("GET /api/v1/projections: stops %v, want only notification_history's", got)
	}
}
