package wire_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/suppressions"
	"github.com/herald-notify/herald/wire"
)

func TestSuppressionJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, cet)
	later := at.Add(720 * time.Hour)
	tests := []struct {
		name string
		s    suppressions.Suppression
		want string
	}{{
		name: "an operator's, with an expiry, holding; times in UTC; no notification id",
		s: suppressions.Suppression{Channel: herald.ChannelSMS, Recipient: "+14155550123", Cause: "manual", Reason: "asked by phone",
			CreatedAt: at, CreatedBy: "apikey:ops", UpdatedAt: at, ExpiresAt: &later, Version: 1, Active: true},
		want: `{"channel":"sms","recipient":"+14155550123","cause":"manual","reason":"asked by phone","created_at":"2026-12-05T09:00:00Z",
			"created_by":"apikey:ops","updated_at":"2026-12-05T09:00:00Z","expires_at":"2027-01-04T09:00:00Z","active":true,"version":1,
			"links":{"self":"/api/v1/suppressions/sms/%2B14155550123","events":"/api/v1/suppressions/sms/%2B14155550123/events"}}`,
	}, {
		name: "a bounce's, removed",
		s: suppressions.Suppression{Channel: herald.ChannelEmail, Recipient: "ann@example.com", Cause: "hard_bounce", Reason: "5.1.1",
			NotificationID: "0193a4f2-7c1e-7000-8000-000000000001", CreatedAt: at, CreatedBy: "system:hard_bounce", UpdatedAt: later,
			RemovedAt: &later, Version: 2},
		want: `{"channel":"email","recipient":"ann@example.com","cause":"hard_bounce","reason":"5.1.1",
			"notification_id":"0193a4f2-7c1e-7000-8000-000000000001","created_at":"2026-12-05T09:00:00Z","created_by":"system:hard_bounce",
			"updated_at":"2027-01-04T09:00:00Z","removed_at":"2027-01-04T09:00:00Z","active":false,"version":2,
			"links":{"self":"/api/v1/suppressions/email/ann@example.com","events":"/api/v1/suppressions/email/ann@example.com/events"}}`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(jsonOf(t, tc.want), asJSON(t, wire.NewSuppression(tc.s))); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff(jsonOf(t, `{"suppressions":[]}`), asJSON(t, wire.NewSuppressionList(nil, ""))); diff != "" {
		t.Errorf("an empty page (-want +got):\n%s", diff)
	}
}

// TestSuppressionPathRoundTrips: a recipient in a link reads back as itself, a + as a + (not a
// space), a / as part of the segment.
func TestSuppressionPathRoundTrips(t *testing.T) {
	for _, r := range []string{"+14155550123", "ann@example.com", "a/b+c d%e@example.com"} {
		p := wire.SuppressionPath("email", r)
		u, err := url.Parse("http://h" + p)
		if err != nil {
			t.Fatal(err)
		}
		seg := u.EscapedPath()[len("/api/v1/suppressions/email/"):]
		got, err := url.PathUnescape(seg)
		if err != nil || got != r {
			t.Errorf("%q: path %s reads back as %q, %v", r, p, got, err)
		}
		if got, _ := url.QueryUnescape(seg); got != r {
			t.Errorf("%q: path %s reads back as %q by a decoder that takes + for a space", r, p, got)
		}
	}
}
