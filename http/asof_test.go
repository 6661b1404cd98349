package http_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// asOfResponse is the part of an as-of status answer the tests check.
type asOfResponse struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	Provider  string    `json:"provider"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	AsOf      time.Time `json:"as_of"`
}

// appendRetries appends, one event at a time, a notification that fails twice and is sent on its
// third attempt, and returns its events as recorded.
func appendRetries(t *testing.T, log *events.Log, id string) []events.Recorded {
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

func statusAsOfPath(id string, at time.Time) string {
	return "/api/v1/notifications/" + id + "/status?as_of=" + url.QueryEscape(at.Format(time.RFC3339Nano))
}

func TestStatusAsOfEndpoint(t *testing.T) {
	api := newTestAPI(t)
	id := uuid.NewString()
	recs := appendRetries(t, events.NewLog(api.pool), id)

	type state struct {
		Status    string
		Attempts  int
		LastError string
		Version   int64
	}
	after := []state{
		{"pending", 0, "", 1},
		{"processing", 1, "", 2},
		{"processing", 1, "421 try later", 3},
		{"processing", 2, "421 try later", 4},
		{"processing", 2, "connection reset", 5},
		{"processing", 3, "connection reset", 6},
		{"sent", 3, "", 7},
	}
	type instant struct {
		name string
		at   time.Time
		want *state // nil: 404
	}
	instants := []instant{{"before it was queued", recs[0].Time.Add(-time.Microsecond), nil}}
	for i, r := range recs {
		instants = append(instants, instant{fmt.Sprintf("at v%d %s", r.Version, r.Type), r.Time, &after[i]})
		if i+1 < len(recs) {
			next := recs[i+1].Time
			instants = append(instants,
				instant{fmt.Sprintf("between v%d and v%d", r.Version, r.Version+1), r.Time.Add(next.Sub(r.Time) / 2), &after[i]},
				instant{fmt.Sprintf("just before v%d", r.Version+1), next.Add(-time.Microsecond), &after[i]})
		}
	}
	instants = append(instants,
		instant{"after it was sent", recs[6].Time.Add(time.Minute), &after[6]},
		instant{"in the future", time.Now().Add(365 * 24 * time.Hour), &after[6]})

	for _, in := range instants {
		t.Run(in.name, func(t *testing.T) {
			r := api.do(t, http.MethodGet, statusAsOfPath(id, in.at), "", nil)
			if in.want == nil {
				if r.status != http.StatusNotFound {
					t.Fatalf("status %d, want 404; body %s", r.status, r.body)
				}
				e := decodeJSON[errorResponse](t, r)
				want := fmt.Sprintf("notification %s did not exist at %s", id, in.at.UTC().Format(time.RFC3339Nano))
				if e.Error.Code != "not_found" || e.Error.Message != want {
					t.Errorf("error %+v, want not_found %q", e.Error, want)
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", r.status, r.body)
			}
			got := decodeJSON[asOfResponse](t, r)
			if g := (state{got.Status, got.Attempts, got.LastError, got.Version}); g != *in.want {
				t.Errorf("as of %s: %+v, want %+v", in.at.Format(time.RFC3339Nano), g, *in.want)
			}
			if got.ID != id || !got.AsOf.Equal(in.at) || got.AsOf.Location() != time.UTC || !got.UpdatedAt.Equal(recs[got.Version-1].Time) {
				t.Errorf("answer %+v, want id %s, as_of %s in UTC, updated_at of v%d", got, id, in.at.UTC().Format(time.RFC3339Nano), got.Version)
			}
		})
	}

	// The answer has the shape of /status, plus as_of; for an instant after the last event, the
	// very same fields.
	now := api.do(t, http.MethodGet, "/api/v1/notifications/"+id+"/status", "", nil)
	then := api.do(t, http.MethodGet, statusAsOfPath(id, recs[6].Time.Add(time.Hour)), "", nil)
	if now.status != http.StatusOK || then.status != http.StatusOK {
		t.Fatalf("status %d and %d, want 200", now.status, then.status)
	}
	nowBody, thenBody := asMap(t, now), asMap(t, then)
	if _, ok := thenBody["as_of"]; !ok {
		t.Errorf("as-of answer %s has no as_of", then.body)
	}
	delete(thenBody, "as_of")
	if diff := cmp.Diff(nowBody, thenBody); diff != "" {
		t.Errorf("as-of answer after the last event differs from /status (-status +as_of):\n%s", diff)
	}
	midway := asMap(t, api.do(t, http.MethodGet, statusAsOfPath(id, recs[2].Time), "", nil))
	// Midway it has failed once and is not sent: a last error, no provider message id yet.
	want := []string{"as_of", "attempts", "created_at", "id", "last_error", "links", "position", "provider", "recipient",
		"status", "type", "updated_at", "version"}
	if got := slices.Sorted(maps.Keys(midway)); !slices.Equal(got, want) {
		t.Errorf("as-of answer midway has fields %v, want %v", got, want)
	}
}

func TestStatusAsOfParameter(t *testing.T) {
	api := newTestAPI(t)
	id := uuid.NewString()
	recs := appendRetries(t, events.NewLog(api.pool), id)
	base := "/api/v1/notifications/" + id + "/status?as_of="

	for _, bad := range []string{"", "yesterday", "2026-11-28", "2026-11-28T10:00:00", "2026-11-28 10:00:00Z",
		"1700000000", "2026-13-01T00:00:00Z", "-1h"} {
		t.Run("refuses "+bad, func(t *testing.T) {
			r := api.do(t, http.MethodGet, base+url.QueryEscape(bad), "", nil)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422; body %s", r.status, r.body)
			}
			e := decodeJSON[errorResponse](t, r)
			want := map[string]string{"as_of": "must be an RFC 3339 time such as 2026-11-28T10:00:00Z"}
			if e.Error.Code != "invalid" || !cmp.Equal(e.Error.Fields, want) {
				t.Errorf("error %+v, want invalid with fields %v", e.Error, want)
			}
		})
	}

	// An offset, escaped as it should be or with its "+" left to decode as a space.
	at := recs[3].Time.In(time.FixedZone("", 90*60))
	for name, query := range map[string]string{
		"escaped":   url.QueryEscape(at.Format(time.RFC3339Nano)),
		"unescaped": at.Format(time.RFC3339Nano),
	} {
		t.Run("offset "+name, func(t *testing.T) {
			r := api.do(t, http.MethodGet, base+query, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: status %d, want 200; body %s", base+query, r.status, r.body)
			}
			got := decodeJSON[asOfResponse](t, r)
			if got.Version != 4 || !got.AsOf.Equal(at) || got.AsOf.Location() != time.UTC {
				t.Errorf("answer %+v, want v4 as of %s in UTC", got, at.UTC().Format(time.RFC3339Nano))
			}
		})
	}

	// Unknown and malformed ids are 404 as of any time, as they are now.
	for _, other := range []string{uuid.NewString(), "not-an-id"} {
		r := api.do(t, http.MethodGet, "/api/v1/notifications/"+other+"/status?as_of=2030-01-01T00:00:00Z", "", nil)
		if r.status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404; body %s", other, r.status, r.body)
		}
	}
	// Without as_of, /status is what it was.
	r := api.do(t, http.MethodGet, "/api/v1/notifications/"+id+"/status", "", nil)
	if r.status != http.StatusOK || asMap(t, r)["as_of"] != nil {
		t.Errorf("/status without as_of: %d %s", r.status, r.body)
	}
}
