package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// TestNotificationsCancel: the command cancels what it can, reports per id why not for the rest,
// and fails when any was refused; -o json prints the same refusals as the API's errors.
func TestNotificationsCancel(t *testing.T) {
	l := newEventsLog(t) // a is sent, b pending
	unknown := uuid.NewString()
	out, err := runHerald(t, "notifications", "cancel", l.b, l.a, unknown, "--database-url", l.url, "--actor", "ops", "--reason", "order withdrawn")
	if err == nil || !strings.Contains(err.Error(), "2 of 3 notifications not cancelled") {
		t.Errorf("cancel of a pending, a sent and an unknown notification: %v, want 2 of 3 refused", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"ID RESULT STATUS DETAIL",
		l.b + " cancelled cancelled -",
		l.a + " not cancelled sent notification " + l.a + " is sent: only a notification that has not gone out (scheduled, pending, or waiting between attempts) can be cancelled",
		unknown + " not cancelled - no notification " + unknown,
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out, len(want))
	}
	for i := range want {
		if got := squeezeSpaces(lines[i]); got != want[i] {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
	pool, err := pgxpool.New(t.Context(), l.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	recs, err := events.NewLog(pool).Load(t.Context(), l.b)
	if err != nil || len(recs) != 2 || recs[1].Type != events.TypeNotificationCancelled || recs[1].Metadata.Actor != "ops" {
		t.Fatalf("stream of b: %+v, %v", recs, err)
	}
	if e, _ := recs[1].Event(); *e.(*events.NotificationCancelled) != (events.NotificationCancelled{Actor: "ops", Reason: "order withdrawn"}) {
		t.Errorf("b's cancel records %+v", e)
	}

	out, err = runHerald(t, "notifications", "cancel", l.b, "--database-url", l.url, "-o", "json")
	if err == nil {
		t.Error("a second cancel succeeded")
	}
	var got struct {
		Results []struct {
			ID        string `json:"id"`
			Cancelled bool   `json:"cancelled"`
			Status    string `json:"status"`
			Version   int64  `json:"version"`
			Error     struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Results) != 1 {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if r := got.Results[0]; r.ID != l.b || r.Cancelled || r.Status != "cancelled" || r.Version != 2 || r.Error.Code != "conflict" || r.Error.Fields["status"] != "cancelled" {
		t.Errorf("-o json of a second cancel: %+v", r)
	}

	// Ids are checked before anything connects.
	_, err = runHerald(t, "notifications", "cancel", l.b, "nope", "--database-url", "postgres://nobody@127.0.0.1:1/none")
	if err == nil || !strings.Contains(err.Error(), `not a notification id (a UUID): "nope"`) {
		t.Errorf("cancel of a bad id: %v", err)
	}
}

// TestNotificationsCancelReadsTheAttemptLease: the command judges an open attempt by the workers'
// lease settings: within the lease it is in flight and refused; past it (HERALD_ATTEMPT_LEASE
// short) the worker is presumed gone and the notification cancelled, its attempt recorded
// abandoned. A lease the workers would refuse is refused here too, before anything connects.
func TestNotificationsCancelReadsTheAttemptLease(t *testing.T) {
	l := newEventsLog(t) // b is pending
	pool, err := pgxpool.New(t.Context(), l.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	log := events.NewLog(pool)
	if _, err := log.Append(t.Context(), l.b, 1, events.Metadata{Actor: "worker:host/9"}, &events.NotificationProcessing{Attempt: 1, Worker: "host/9"}); err != nil {
		t.Fatal(err)
	}

	out, err := runHerald(t, "notifications", "cancel", l.b, "--database-url", l.url)
	if err == nil || !strings.Contains(out, "attempt 1 is in flight") {
		t.Fatalf("cancel within the default lease: %v\n%s\nwant refused, in flight", err, out)
	}

	_, err = runHerald(t, "notifications", "cancel", l.b, "--database-url", l.url, "--attempt-lease", "1s", "--delivery-timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "--attempt-lease 1s: want more than --delivery-timeout 2s") {
		t.Errorf("cancel with a lease shorter than the timeout: %v", err)
	}

	t.Setenv("HERALD_DELIVERY_TIMEOUT", "1ms")
	t.Setenv("HERALD_ATTEMPT_LEASE", "20ms")
	heraldtest.Eventually(t, 10*time.Second, "the cancel past the lease", func() (bool, error) {
		out, err := runHerald(t, "notifications", "cancel", l.b, "--database-url", l.url)
		return err == nil, fmt.Errorf("%v: %s", err, out)
	})
	recs, err := log.Load(t.Context(), l.b)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range recs {
		types = append(types, r.Type)
	}
	want := []string{events.TypeNotificationQueued, events.TypeNotificationProcessing, events.TypeDeliveryAttemptFailed, events.TypeNotificationCancelled}
	if !slices.Equal(types, want) {
		t.Errorf("stream %v, want %v", types, want)
	}
}
