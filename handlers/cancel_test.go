package handlers_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
)

func TestDecideCancel(t *testing.T) {
	sent := &events.NotificationSent{Attempt: 1, Provider: "http-sms", ProviderMessageID: "SM1"}
	cancelled := &events.NotificationCancelled{Actor: "apikey:shop", Reason: "first"}
	tests := []struct {
		name  string
		given []events.Event
		// when: who cancels, and why, and when (the database's clock; t0 when zero)
		actor, reason string
		now           time.Time
		then          []events.Event
		// wantErr is the error the refusal wraps; wantStatus the status it names.
		wantErr    error
		wantCode   string
		wantStatus herald.Status
	}{
		{
			name:  "pending",
			given: []events.Event{queued},
			actor: "apikey:shop", reason: "order withdrawn",
			then: []events.Event{&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"}},
		},
		{
			name:  "pending without a reason",
			given: []events.Event{queued},
			actor: "ops",
			then:  []events.Event{&events.NotificationCancelled{Actor: "ops"}},
		},
		{
			name: "scheduled, before its send_at",
			given: []events.Event{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi",
				SendAt: new(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC))}},
			actor: "apikey:shop", reason: "plans changed",
			then: []events.Event{&events.NotificationCancelled{Actor: "apikey:shop", Reason: "plans changed"}},
		},
		{
			name: "released by the scheduler, waiting for its attempt",
			given: []events.Event{&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Body: "Hi",
				SendAt: new(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC))}, &events.NotificationReleased{SendAt: time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)}},
			actor: "apikey:shop",
			then:  []events.Event{&events.NotificationCancelled{Actor: "apikey:shop"}},
		},
		{
			name:  "waiting between attempts",
			given: []events.Event{queued, processing(1), failedOnce(1)},
			actor: "apikey:shop",
			then:  []events.Event{&events.NotificationCancelled{Actor: "apikey:shop"}},
		},
		{
			name:  "requeued by an operator, waiting for its new round",
			given: []events.Event{queued, processing(1), &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}, &events.NotificationRequeued{Actor: "ops", Attempts: 1}},
			actor: "apikey:shop",
			then:  []events.Event{&events.NotificationCancelled{Actor: "apikey:shop"}},
		},
		{
			name:  "recovered by the reconciler while pending",
			given: []events.Event{queued, &events.NotificationRecovered{Actor: handlers.ReconcilerActor, Reason: "stalled", Status: herald.StatusPending}},
			actor: "apikey:shop",
			then:  []events.Event{&events.NotificationCancelled{Actor: "apikey:shop"}},
		},
		{
			name:  "an attempt in flight",
			given: []events.Event{queued, processing(1)},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusProcessing,
		},
		{
			// processing(1) started at t0+1s.
			name:  "an attempt in flight, just within its lease",
			given: []events.Event{queued, processing(1)},
			actor: "apikey:shop", now: t0.Add(time.Second + policy.Lease - time.Nanosecond),
			wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusProcessing,
		},
		{
			name:  "an attempt past its lease: its worker is gone",
			given: []events.Event{queued, processing(1)},
			actor: "apikey:shop", reason: "order withdrawn", now: t0.Add(time.Second + policy.Lease),
			then: []events.Event{
				&events.DeliveryAttemptFailed{Attempt: 1, Error: abandonedText},
				&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"},
			},
		},
		{
			// The last attempt allowed, abandoned: cancelled all the same, as the client asked.
			name:  "the last retry past its lease",
			given: []events.Event{queued, processing(1), failedOnce(1), processing(2), failedOnce(2), processing(3)},
			actor: "ops", now: t0.Add(5*time.Second + policy.Lease),
			then: []events.Event{
				&events.DeliveryAttemptFailed{Attempt: 3, Error: abandonedText},
				&events.NotificationCancelled{Actor: "ops"},
			},
		},
		{
			name:  "a retry in flight",
			given: []events.Event{queued, processing(1), failedOnce(1), processing(2)},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusProcessing,
		},
		{
			name:  "sent",
			given: []events.Event{queued, processing(1), sent},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusSent,
		},
		{
			name:  "delivered",
			given: []events.Event{queued, processing(1), sent, &events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SM1"}},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusDelivered,
		},
		{
			name:  "bounced",
			given: []events.Event{queued, processing(1), sent, &events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1"}},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusBounced,
		},
		{
			name:  "failed",
			given: []events.Event{queued, processing(1), &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusFailed,
		},
		{
			name:  "cancelled already",
			given: []events.Event{queued, cancelled},
			actor: "apikey:shop", wantErr: handlers.ErrNotCancellable, wantCode: herald.ECONFLICT, wantStatus: herald.StatusCancelled,
		},
		{
			name:    "never queued",
			actor:   "apikey:shop",
			wantErr: handlers.ErrNotQueued,
		},
		{
			name:  "no actor",
			given: []events.Event{queued},
			actor: " ", wantCode: herald.EINVALID,
		},
		{
			name:  "a reason too long",
			given: []events.Event{queued},
			actor: "ops", reason: string(make([]byte, 501)), wantCode: herald.EINVALID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := given(tt.given...)
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			got, err := handlers.DecideCancel(n, policy.Lease, now, tt.actor, tt.reason)
			if tt.wantErr == nil && tt.wantCode == "" {
				if err != nil {
					t.Fatalf("DecideCancel: %v", err)
				}
				if diff := cmp.Diff(tt.then, got); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
				return
			}
			if got != nil {
				t.Errorf("DecideCancel = %v, want no events", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if tt.wantCode != "" && herald.ErrorCode(err) != tt.wantCode {
				t.Errorf("error code %q (%v), want %q", herald.ErrorCode(err), err, tt.wantCode)
			}
			if tt.wantStatus != "" {
				if got := herald.ErrorFields(err)["status"]; got != string(tt.wantStatus) {
					t.Errorf("refusal names status %q, want %q (%v)", got, tt.wantStatus, err)
				}
			}
		})
	}
}

// TestDecideCancelledLeftAlone: nothing that works on notifications under way touches a cancelled
// one: a worker acknowledges its command unsent and the reconciler does not recover it, however
// long it has been idle.
func TestDecideCancelledLeftAlone(t *testing.T) {
	for name, story := range map[string][]events.Event{
		"cancelled while pending":    {queued, &events.NotificationCancelled{Actor: "ops"}},
		"cancelled between attempts": {queued, processing(1), failedOnce(1), &events.NotificationCancelled{Actor: "ops"}},
		"cancelled after a recovery": {queued, &events.NotificationRecovered{Actor: handlers.ReconcilerActor, Status: herald.StatusPending}, &events.NotificationCancelled{Actor: "ops"}},
	} {
		t.Run(name, func(t *testing.T) {
			n := given(story...)
			if evs, err := handlers.DecideStart(n, policy, t0.Add(time.Hour), "w"); !errors.Is(err, handlers.ErrCancelled) {
				t.Errorf("DecideStart = %v, %v; want ErrCancelled", evs, err)
			}
			if evs, err := handlers.DecideRecover(n, handlers.Stall{Idle: 24 * time.Hour}, time.Minute); !errors.Is(err, handlers.ErrCancelled) {
				t.Errorf("DecideRecover = %v, %v; want ErrCancelled", evs, err)
			}
		})
	}
}

func TestMayCancel(t *testing.T) {
	byShop := &events.NotificationQueued{APIKey: &events.APIKeyRef{ID: "k-shop", Name: "shop"}}
	anonymous := &events.NotificationQueued{}
	for _, tt := range []struct {
		name   string
		queued *events.NotificationQueued
		by     handlers.Canceler
		want   bool
	}{
		{"the key that sent it", byShop, handlers.Canceler{Actor: "apikey:shop", KeyID: "k-shop"}, true},
		{"another send key", byShop, handlers.Canceler{Actor: "apikey:blog", KeyID: "k-blog"}, false},
		{"an operate key", byShop, handlers.Canceler{Actor: "apikey:ops", KeyID: "k-ops", Any: true}, true},
		{"an operator on the machine", byShop, handlers.Canceler{Actor: "ada", Any: true}, true},
		{"a key, of one sent without a key", anonymous, handlers.Canceler{Actor: "apikey:shop", KeyID: "k-shop"}, false},
		{"no key, of one sent without a key", anonymous, handlers.Canceler{Actor: "api"}, false},
	} {
		if got := handlers.MayCancel(tt.queued, tt.by); got != tt.want {
			t.Errorf("%s: MayCancel = %v, want %v", tt.name, got, tt.want)
		}
	}
}
