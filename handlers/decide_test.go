package handlers_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
)

var (
	t0     = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	policy = handlers.Policy{MaxAttempts: 3, Lease: time.Minute}
)

// given folds events, recorded a second apart from t0, into the notification they describe.
func given(evs ...events.Event) herald.Notification {
	var n herald.Notification
	for i, e := range evs {
		r := events.Recorded{StreamID: "n1", Version: int64(i + 1), Position: int64(10 + i), Type: e.EventType(), Time: t0.Add(time.Duration(i) * time.Second)}
		n = events.Evolve(n, r, e)
	}
	return n
}

var (
	queued     = &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "hi", Body: "hi"}
	processing = func(a int) events.Event { return &events.NotificationProcessing{Attempt: a, Worker: "w"} }
	failedOnce = func(a int) events.Event {
		return &events.DeliveryAttemptFailed{Attempt: a, Provider: "http-sms", Error: "503"}
	}
)

func TestDecideStart(t *testing.T) {
	tests := []struct {
		name    string
		given   []events.Event
		now     time.Time
		then    []events.Event
		wantErr error
	}{
		{
			name:  "first attempt",
			given: []events.Event{queued},
			now:   t0.Add(time.Second),
			then:  []events.Event{processing(1)},
		},
		{
			name:  "retry after a failed attempt",
			given: []events.Event{queued, processing(1), failedOnce(1)},
			now:   t0.Add(5 * time.Second),
			then:  []events.Event{processing(2)},
		},
		{
			name:    "already sent",
			given:   []events.Event{queued, processing(1), &events.NotificationSent{Attempt: 1, Provider: "log"}},
			now:     t0.Add(time.Hour),
			wantErr: handlers.ErrAlreadySent,
		},
		{
			// A report after sending never leads to sending again, whatever it says.
			name: "bounced after sending",
			given: []events.Event{queued, processing(1), &events.NotificationSent{Attempt: 1, Provider: "smtp"},
				&events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1"}},
			now:     t0.Add(time.Hour),
			wantErr: handlers.ErrAlreadySent,
		},
		{
			name: "undelivered after sending",
			given: []events.Event{queued, processing(1), &events.NotificationSent{Attempt: 1, Provider: "http-sms"},
				&events.NotificationUndelivered{Provider: "http-sms", ErrorCode: "30003"}},
			now:     t0.Add(time.Hour),
			wantErr: handlers.ErrAlreadySent,
		},
		{
			name:    "already failed",
			given:   []events.Event{queued, processing(1), &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}},
			now:     t0.Add(time.Hour),
			wantErr: handlers.ErrAlreadyFailed,
		},
		{
			name:    "never queued",
			now:     t0,
			wantErr: handlers.ErrNotQueued,
		},
		{
			name:    "attempt in flight within its lease",
			given:   []events.Event{queued, processing(1)},
			now:     t0.Add(30 * time.Second),
			wantErr: handlers.ErrAttemptInProgress,
		},
		{
			name:  "attempt abandoned after its lease",
			given: []events.Event{queued, processing(1)},
			now:   t0.Add(2 * time.Minute),
			then: []events.Event{
				&events.DeliveryAttemptFailed{Attempt: 1, Error: "attempt abandoned: no outcome was recorded within the lease (worker stopped or lost its connection)"},
				processing(2),
			},
		},
		{
			name:  "last attempt abandoned",
			given: []events.Event{queued, processing(1), failedOnce(1), processing(2), failedOnce(2), processing(3)},
			now:   t0.Add(time.Hour),
			then: []events.Event{&events.NotificationFailed{
				Attempt: 3, Reason: events.ReasonAttemptsExhausted,
				Error: "attempt abandoned: no outcome was recorded within the lease (worker stopped or lost its connection)",
			}},
		},
		{
			name:  "attempts used up under an older, larger limit",
			given: []events.Event{queued, processing(1), failedOnce(1), processing(2), failedOnce(2), processing(3), failedOnce(3)},
			now:   t0.Add(time.Hour),
			then:  []events.Event{&events.NotificationFailed{Attempt: 3, Provider: "http-sms", Error: "503", Reason: events.ReasonAttemptsExhausted}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handlers.DecideStart(given(tt.given...), policy, tt.now, "w")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.then, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideOutcome(t *testing.T) {
	transient := errors.New("503 service unavailable")
	permanent := delivery.Permanent(errors.New("550 no such user"))
	tests := []struct {
		name    string
		given   []events.Event
		msgID   string
		sendErr error
		then    []events.Event
		wantErr error
	}{
		{
			name:  "sent",
			given: []events.Event{queued, processing(1)},
			msgID: "SM1",
			then:  []events.Event{&events.NotificationSent{Attempt: 1, Provider: "p", ProviderMessageID: "SM1"}},
		},
		{
			name:    "transient error with attempts left",
			given:   []events.Event{queued, processing(1)},
			sendErr: transient,
			then:    []events.Event{&events.DeliveryAttemptFailed{Attempt: 1, Provider: "p", Error: transient.Error()}},
		},
		{
			name:    "transient error on the last attempt",
			given:   []events.Event{queued, processing(1), failedOnce(1), processing(2), failedOnce(2), processing(3)},
			sendErr: transient,
			then:    []events.Event{&events.NotificationFailed{Attempt: 3, Provider: "p", Error: transient.Error(), Reason: events.ReasonAttemptsExhausted}},
		},
		{
			name:    "permanent error on the first attempt",
			given:   []events.Event{queued, processing(1)},
			sendErr: permanent,
			then:    []events.Event{&events.NotificationFailed{Attempt: 1, Provider: "p", Error: permanent.Error(), Reason: events.ReasonPermanentError}},
		},
		{
			name:    "no attempt open",
			given:   []events.Event{queued},
			wantErr: handlers.ErrNoOpenAttempt,
		},
		{
			name:    "outcome after the attempt was declared abandoned",
			given:   []events.Event{queued, processing(1), failedOnce(1)},
			wantErr: handlers.ErrNoOpenAttempt,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := handlers.DecideOutcome(given(tt.given...), policy, delivery.Route{Provider: "p"}, tt.msgID, tt.sendErr)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.then, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// The story a notification's events tell is the status Evolve derives from them.
func TestEvolveStatuses(t *testing.T) {
	tests := []struct {
		given       []events.Event
		status      herald.Status
		attempts    int
		attemptOpen bool
		lastError   string
		providerMsg string
	}{
		{given: []events.Event{queued}, status: herald.StatusPending},
		{given: []events.Event{queued, processing(1)}, status: herald.StatusProcessing, attempts: 1, attemptOpen: true},
		{given: []events.Event{queued, processing(1), failedOnce(1)}, status: herald.StatusProcessing, attempts: 1, lastError: "503"},
		{given: []events.Event{queued, processing(1), failedOnce(1), processing(2), &events.NotificationSent{Attempt: 2, Provider: "p", ProviderMessageID: "m"}},
			status: herald.StatusSent, attempts: 2, providerMsg: "m"},
		{given: []events.Event{queued, processing(1), &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}},
			status: herald.StatusFailed, attempts: 1, lastError: "550"},
	}
	for _, tt := range tests {
		n := given(tt.given...)
		if n.Status != tt.status || n.Attempts != tt.attempts || n.AttemptOpen != tt.attemptOpen || n.LastError != tt.lastError || n.ProviderMessageID != tt.providerMsg {
			t.Errorf("after %d events: %+v; want status %s, attempts %d, open %v, error %q, provider id %q",
				len(tt.given), n, tt.status, tt.attempts, tt.attemptOpen, tt.lastError, tt.providerMsg)
		}
		if n.Version != int64(len(tt.given)) {
			t.Errorf("after %d events: version %d", len(tt.given), n.Version)
		}
	}
}

func TestDecideOperatorActions(t *testing.T) {
	failed := []events.Event{queued, processing(1), &events.NotificationFailed{Attempt: 1, Error: "550", Reason: events.ReasonPermanentError}}
	tests := []struct {
		name    string
		given   []events.Event
		decide  func(herald.Notification, string, string) ([]events.Event, error)
		actor   string
		reason  string
		then    []events.Event
		wantErr error
		code    string
	}{
		{name: "requeue a failed notification", given: failed, decide: handlers.DecideRequeue, actor: "ada", reason: "mailbox fixed",
			then: []events.Event{&events.NotificationRequeued{Actor: "ada", Reason: "mailbox fixed", Attempts: 1}}},
		{name: "requeue without a reason", given: failed, decide: handlers.DecideRequeue, actor: "ada",
			then: []events.Event{&events.NotificationRequeued{Actor: "ada", Attempts: 1}}},
		{name: "discard a failed notification", given: failed, decide: handlers.DecideDiscard, actor: "ada", reason: "customer left",
			then: []events.Event{&events.NotificationDiscarded{Actor: "ada", Reason: "customer left"}}},
		{name: "discard needs a reason", given: failed, decide: handlers.DecideDiscard, actor: "ada", reason: "  ", code: herald.EINVALID},
		{name: "an actor is required", given: failed, decide: handlers.DecideRequeue, actor: "", code: herald.EINVALID},
		{name: "requeue a sent notification", given: []events.Event{queued, processing(1), &events.NotificationSent{Attempt: 1}},
			decide: handlers.DecideRequeue, actor: "ada", wantErr: handlers.ErrNotFailed},
		{name: "discard a processing notification", given: []events.Event{queued, processing(1)},
			decide: handlers.DecideDiscard, actor: "ada", reason: "x", wantErr: handlers.ErrNotFailed},
		{name: "requeue what was never queued", decide: handlers.DecideRequeue, actor: "ada", wantErr: handlers.ErrNotQueued},
		{name: "requeue again after a discard", given: append(failed[:3:3], &events.NotificationDiscarded{Actor: "bob", Reason: "r"}),
			decide: handlers.DecideRequeue, actor: "ada",
			then: []events.Event{&events.NotificationRequeued{Actor: "ada", Attempts: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide(given(tt.given...), tt.actor, tt.reason)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.code != "" && herald.ErrorCode(err) != tt.code {
				t.Fatalf("error = %v, want code %s", err, tt.code)
			}
			if tt.wantErr == nil && tt.code == "" && err != nil {
				t.Fatalf("error = %v", err)
			}
			if diff := cmp.Diff(tt.then, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// A requeue starts a new round: the attempt numbers go on, and the round gets MaxAttempts anew.
func TestRequeueStartsANewRound(t *testing.T) {
	exhausted := []events.Event{queued, processing(1), failedOnce(1), processing(2), failedOnce(2), processing(3),
		&events.NotificationFailed{Attempt: 3, Error: "503", Reason: events.ReasonAttemptsExhausted}}
	requeued := append(exhausted[:len(exhausted):len(exhausted)], &events.NotificationRequeued{Actor: "ada", Attempts: 3})

	n := given(requeued...)
	if n.Status != herald.StatusPending || n.RoundStart != 3 {
		t.Fatalf("after requeue: status %s, round start %d; want pending, 3", n.Status, n.RoundStart)
	}
	start, err := handlers.DecideStart(n, policy, t0.Add(time.Hour), "w")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]events.Event{processing(4)}, start); diff != "" {
		t.Errorf("first attempt of the new round (-want +got):\n%s", diff)
	}
	// Two failures into the new round, the third attempt is still allowed, and its failure ends it.
	round := append(requeued, processing(4), failedOnce(4), processing(5), failedOnce(5), processing(6))
	out, err := handlers.DecideOutcome(given(round...), policy, delivery.Route{Provider: "p"}, "", errors.New("503"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]events.Event{&events.NotificationFailed{Attempt: 6, Provider: "p", Error: "503", Reason: events.ReasonAttemptsExhausted}}, out); diff != "" {
		t.Errorf("last attempt of the new round (-want +got):\n%s", diff)
	}
	mid := append(requeued, processing(4))
	out, err = handlers.DecideOutcome(given(mid...), policy, delivery.Route{Provider: "p"}, "", errors.New("503"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]events.Event{&events.DeliveryAttemptFailed{Attempt: 4, Provider: "p", Error: "503"}}, out); diff != "" {
		t.Errorf("first failure of the new round (-want +got):\n%s", diff)
	}
}
