package projections_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// asOfState is what an as-of answer is checked on.
type asOfState struct {
	Status    herald.Status
	Attempts  int
	LastError string
	Version   int64
}

// appendRetryStory appends, one event at a time as the API and a worker would, a notification
// that fails twice and is sent on its third attempt, and returns the events as recorded. The
// instants the test asks about are derived from their recorded times.
func appendRetryStory(t *testing.T, log *events.Log, id string) []events.Recorded {
	t.Helper()
	steps := []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi", Body: "Hi"},
		&events.NotificationProcessing{Attempt: 1, Worker: "w"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"},
		&events.NotificationProcessing{Attempt: 2, Worker: "w"},
		&events.DeliveryAttemptFailed{Attempt: 2, Provider: "smtp", Error: "connection reset"},
		&events.NotificationProcessing{Attempt: 3, Worker: "w"},
		&events.NotificationSent{Attempt: 3, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
	}
	var recs []events.Recorded
	for i, e := range steps {
		r, err := log.Append(t.Context(), id, int64(i), events.Metadata{Actor: "test"}, e)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !r[0].Time.After(recs[i-1].Time) {
			t.Fatalf("v%d was recorded at %s, not after v%d at %s", i+1, r[0].Time, i, recs[i-1].Time)
		}
		recs = append(recs, r...)
	}
	return recs
}

// retryStoryStates is the state after each event of appendRetryStory.
var retryStoryStates = []asOfState{
	{herald.StatusPending, 0, "", 1},
	{herald.StatusProcessing, 1, "", 2},
	{herald.StatusProcessing, 1, "421 try later", 3},
	{herald.StatusProcessing, 2, "421 try later", 4},
	{herald.StatusProcessing, 2, "connection reset", 5},
	{herald.StatusProcessing, 3, "connection reset", 6},
	{herald.StatusSent, 3, "", 7},
}

func TestStatusAsOf(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	reader := projections.NewReader(db.Pool, log)
	ctx := t.Context()
	id := uuid.NewString()
	recs := appendRetryStory(t, log, id)

	type instant struct {
		name string
		at   time.Time
		want *asOfState // nil: did not exist
	}
	instants := []instant{{"before it was queued", recs[0].Time.Add(-time.Microsecond), nil}}
	for i, r := range recs {
		want := &retryStoryStates[i]
		instants = append(instants, instant{fmt.Sprintf("at v%d %s", r.Version, r.Type), r.Time, want})
		if i+1 < len(recs) {
			next := recs[i+1].Time
			instants = append(instants,
				instant{fmt.Sprintf("between v%d and v%d", r.Version, r.Version+1), r.Time.Add(next.Sub(r.Time) / 2), want},
				instant{fmt.Sprintf("just before v%d", r.Version+1), next.Add(-time.Microsecond), want})
		}
	}
	instants = append(instants,
		instant{"after it was sent", recs[6].Time.Add(time.Second), &retryStoryStates[6]},
		instant{"in the future", time.Now().Add(24 * time.Hour), &retryStoryStates[6]},
		instant{"in another time zone", recs[2].Time.In(time.FixedZone("UTC+5", 5*3600)), &retryStoryStates[2]})

	for _, in := range instants {
		t.Run(in.name, func(t *testing.T) {
			n, err := reader.StatusAsOf(ctx, id, in.at)
			if in.want == nil {
				want := "notification " + id + " did not exist at " + in.at.UTC().Format(time.RFC3339Nano)
				if herald.ErrorCode(err) != herald.ENOTFOUND || herald.ErrorMessage(err) != want {
					t.Errorf("error %v, want ENOTFOUND %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := (asOfState{n.Status, n.Attempts, n.LastError, n.Version}); got != *in.want {
				t.Errorf("as of %s: %+v, want %+v", in.at.Format(time.RFC3339Nano), got, *in.want)
			}
			if !n.UpdatedAt.Equal(recs[n.Version-1].Time) || n.ID != id || n.Recipient != "ada@example.com" {
				t.Errorf("as of %s: %+v, want the notification as its v%d left it", in.at.Format(time.RFC3339Nano), n, n.Version)
			}
		})
	}

	if _, err := reader.StatusAsOf(ctx, uuid.NewString(), time.Now()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("unknown id: error %v, want ENOTFOUND", err)
	}
	if _, err := reader.StatusAsOf(ctx, "not-an-id", time.Now()); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("malformed id: error %v, want ENOTFOUND", err)
	}
}

// The as-of answer comes from the log alone: a read model that says otherwise (stale, or
// corrupted) does not change it, while the current status does read the model.
func TestStatusAsOfIgnoresReadModels(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	reader := projections.NewReader(db.Pool, log)
	ctx := t.Context()
	id := uuid.NewString()
	recs := appendRetryStory(t, log, id)

	if _, err := db.Pool.Exec(ctx, `INSERT INTO notification_status
		(notification_id, channel, recipient, status, attempts, last_error, version, position, created_at, updated_at)
		VALUES ($1, 'sms', '+14155550123', 'failed', 9, 'from the read model', 99, 99, now(), now())`, id); err != nil {
		t.Fatal(err)
	}
	current, err := reader.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if current.Status != herald.StatusFailed || current.Attempts != 9 {
		t.Fatalf("Status = %+v, want the planted row (the test relies on Status reading it)", current)
	}
	for _, at := range []time.Time{recs[3].Time, time.Now().Add(time.Hour)} {
		n, err := reader.StatusAsOf(ctx, id, at)
		if err != nil {
			t.Fatal(err)
		}
		want := retryStoryStates[3]
		if at.After(recs[6].Time) {
			want = retryStoryStates[6]
		}
		if got := (asOfState{n.Status, n.Attempts, n.LastError, n.Version}); got != want || strings.Contains(n.LastError, "read model") {
			t.Errorf("as of %s: %+v, want %+v from the log", at.Format(time.RFC3339Nano), got, want)
		}
	}
}
