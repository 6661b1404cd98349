package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

func TestProjectionsRebuildArguments(t *testing.T) {
	commandSettings(t)
	t.Setenv("HERALD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"projections", "rebuild"}, "name one projection"},
		{[]string{"projections", "rebuild", "notification_status", "--all"}, "not both"},
		{[]string{"projections", "rebuild", "a", "b"}, "name one projection"},
		{[]string{"projections", "rebuild", "bogus"}, `no projection "bogus"`},
		{[]string{"projections", "rebuild", "--all", "-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table or json`},
		{[]string{"projections", "rebuild", "--all", "--progress", "fancy"}, `invalid argument "fancy" for "--progress" flag: want auto, bar, log or none`},
		{[]string{"projections", "rebuild", "--all", "--batch-size", "0"}, "--batch-size"},
		{[]string{"projections", "status", "-o", "xml"}, `invalid argument "xml" for "-o, --output" flag: want table or json`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := runHerald(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestProjectionsStatusAndRebuild(t *testing.T) {
	commandSettings(t)
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		id := uuid.NewString()
		if _, err := log.Append(ctx, id, 0, events.Metadata{Actor: "test"},
			&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", Content: "c", Body: "b"},
			&events.NotificationProcessing{Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}

	out, err := runHerald(t, "projections", "status", "-o", "json", "--database-url", db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []struct {
		Name     string `json:"name"`
		Position int64  `json:"position"`
		Head     int64  `json:"head"`
		Lag      int64  `json:"lag"`
	}
	if err := json.Unmarshal([]byte(out), &statuses); err != nil {
		t.Fatalf("status -o json printed %q: %v", out, err)
	}
	if len(statuses) != 2 || statuses[0].Lag != 24 || statuses[0].Head != statuses[1].Head || statuses[0].Position != 0 {
		t.Errorf("status before any projection ran = %+v; want two projections at 0 with a lag of 24", statuses)
	}

	heraldtest.WaitLogVisible(t, db, 24)
	// The services' role, which owns no table, may rebuild the read models.
	out, err = runHerald(t, "projections", "rebuild", "--all", "-o", "json", "--progress", "none", "--database-url", db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	var reports []struct {
		Projection string `json:"projection"`
		Events     int64  `json:"events"`
		Rows       int64  `json:"rows"`
		Swapped    bool   `json:"swapped"`
		Compared   bool   `json:"compared"`
		Missing    *int64 `json:"missing"`
	}
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("rebuild -o json printed %q: %v", out, err)
	}
	if len(reports) != 2 || reports[0].Projection != "notification_status" || reports[0].Rows != 12 || reports[1].Rows != 24 {
		t.Fatalf("rebuild reports = %+v", reports)
	}
	for _, r := range reports {
		// The live tables had not been projected yet: the comparison brings them to the same
		// point first, so they agree.
		if r.Events != 24 || !r.Swapped || !r.Compared || r.Missing == nil || *r.Missing != 0 {
			t.Errorf("report %+v: want 24 events, swapped, compared, nothing missing", r)
		}
	}

	out, err = runHerald(t, "projections", "status", "--database-url", db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "notification_status") || len(regexp.MustCompile(`\s0\s+ok\n`).FindAllString(out, -1)) != 2 {
		t.Errorf("status after the rebuild:\n%s\nwant both projections with a lag of 0, ok", out)
	}
}

// A projection stopped at a gap in a stream's versions says so in "projections status", with the
// stop's reason and time, in the table and in JSON, until a rebuild clears it.
func TestProjectionsStatusShowsAStop(t *testing.T) {
	commandSettings(t)
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	ctx := context.Background()
	id := uuid.NewString()
	if _, err := log.Append(ctx, id, 0, events.Metadata{Actor: "test"},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", Content: "c", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	reason := "notification_status: stream " + id + ": event at position 9 is version 3, but the read model is at version 1"
	if err := log.SetConsumerCursor(ctx, nil, "notification_status", events.Cursor{}); err != nil {
		t.Fatal(err)
	}
	if err := log.StopConsumer(ctx, nil, "notification_status", reason); err != nil {
		t.Fatal(err)
	}

	// A stop is in the exit status too, so that a script or a monitor sees it.
	out, err := runHerald(t, "projections", "status", "--database-url", db.URL)
	if err == nil || !strings.Contains(err.Error(), "notification_status") || strings.Contains(err.Error(), "notification_history") {
		t.Errorf("status with notification_status stopped: error %v, want one naming it alone", err)
	}
	for _, want := range []string{"STATE", "STOPPED since ", reason, `rebuild it with "herald projections rebuild notification_status"`} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant it to say %q", out, want)
		}
	}
	if !regexp.MustCompile(`notification_history\s+0\s+1\s+1\s+ok\n`).MatchString(out) {
		t.Errorf("status:\n%s\nwant notification_history ok", out)
	}

	out, err = runHerald(t, "projections", "status", "-o", "json", "--database-url", db.URL)
	if err == nil {
		t.Errorf("status -o json with a projection stopped succeeded; want it to fail after printing")
	}
	var statuses []struct {
		Name      string     `json:"name"`
		Stopped   string     `json:"stopped"`
		StoppedAt *time.Time `json:"stopped_at"`
	}
	if err := json.Unmarshal([]byte(out), &statuses); err != nil {
		t.Fatalf("status -o json printed %q: %v", out, err)
	}
	if len(statuses) != 2 || statuses[0].Stopped != reason || statuses[0].StoppedAt == nil || time.Since(*statuses[0].StoppedAt) > time.Minute ||
		statuses[1].Stopped != "" || statuses[1].StoppedAt != nil {
		t.Errorf("status -o json:\n%s\nwant notification_status stopped now, notification_history not", out)
	}

	heraldtest.WaitLogVisible(t, db, 1)
	if _, err := runHerald(t, "projections", "rebuild", "notification_status", "--progress", "none", "--database-url", db.URL); err != nil {
		t.Fatal(err)
	}
	out, err = runHerald(t, "projections", "status", "--database-url", db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "STOPPED") {
		t.Errorf("status after the rebuild:\n%s\nwant the stop cleared", out)
	}
}
