package breakers_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/heraldtest"
)

// runtimePool connects as the runtime role the services use: the table must be granted to it.
func runtimePool(t *testing.T) (*pgxpool.Pool, *pgxpool.Pool) {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, db.Pool
}

func TestPublishListForget(t *testing.T) {
	pool, owner := runtimePool(t)
	ctx := context.Background()
	store := breakers.New(pool)
	changed := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	statuses := []delivery.BreakerStatus{
		{Channel: "email", Provider: "smtp", State: delivery.BreakerOpen, ConsecutiveFailures: 5, LastError: "connection refused", ChangedAt: changed},
		{Channel: "email", Provider: "smtp-2", State: delivery.BreakerClosed, ChangedAt: changed},
	}
	if err := store.Publish(ctx, "host/1", statuses); err != nil {
		t.Fatal(err)
	}
	// Written again: one row per provider and process, updated.
	statuses[0].State, statuses[0].ConsecutiveFailures = delivery.BreakerHalfOpen, 6
	if err := store.Publish(ctx, "host/1", statuses); err != nil {
		t.Fatal(err)
	}
	if err := store.Publish(ctx, "host/2", statuses[1:]); err != nil {
		t.Fatal(err)
	}
	// host/2 has not written for an hour.
	if _, err := owner.Exec(ctx, `UPDATE provider_breakers SET updated_at = now() - interval '1 hour' WHERE process = 'host/2'`); err != nil {
		t.Fatal(err)
	}

	rows, err := store.List(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Process, Provider, State string
		Failures                 int
		LastError                string
		Stale                    bool
	}
	var got []row
	for _, r := range rows {
		if !r.ChangedAt.Equal(changed) || r.UpdatedAt.IsZero() {
			t.Errorf("row %+v: want changed_at %s and an update time", r, changed)
		}
		got = append(got, row{r.Process, r.Provider, r.State, r.ConsecutiveFailures, r.LastError, r.Stale})
	}
	want := []row{
		{"host/1", "smtp", "half-open", 6, "connection refused", false},
		{"host/1", "smtp-2", "closed", 0, "", false},
		{"host/2", "smtp-2", "closed", 0, "", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	if err := store.Forget(ctx, "host/1"); err != nil {
		t.Fatal(err)
	}
	rows, err = store.List(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Process != "host/2" {
		t.Errorf("after Forget(host/1): %+v, want host/2's row alone", rows)
	}

	// A process gone for more than a day is forgotten at the next publish of any process.
	if _, err := owner.Exec(ctx, `UPDATE provider_breakers SET updated_at = now() - interval '25 hours' WHERE process = 'host/2'`); err != nil {
		t.Fatal(err)
	}
	if err := store.Publish(ctx, "host/3", statuses[:1]); err != nil {
		t.Fatal(err)
	}
	rows, err = store.List(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Process != "host/3" {
		t.Errorf("after a day: %+v, want host/3's row alone", rows)
	}
}

// fakeSource is a failover's breakers, changed by the test.
type fakeSource struct {
	status  chan []delivery.BreakerStatus
	last    []delivery.BreakerStatus
	changed chan struct{}
}

func (s *fakeSource) Status() []delivery.BreakerStatus {
	select {
	case st := <-s.status:
		s.last = st
	default:
	}
	return s.last
}
func (s *fakeSource) Changed() <-chan struct{} { return s.changed }

// TestRunPublishesAtOnceOnChangeAndForgetsAtStop: a change of state is written without waiting
// for the interval, and a stopping worker deletes its rows.
func TestRunPublishesAtOnceOnChangeAndForgetsAtStop(t *testing.T) {
	pool, _ := runtimePool(t)
	store := breakers.New(pool)
	src := &fakeSource{status: make(chan []delivery.BreakerStatus, 1), changed: make(chan struct{}, 1),
		last: []delivery.BreakerStatus{{Channel: "sms", Provider: "http-sms", State: delivery.BreakerClosed, ChangedAt: time.Now()}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logged bytes.Buffer // read once Run has returned
	go func() {
		done <- store.Run(ctx, "host/9", []breakers.Source{src}, time.Hour, slog.New(slog.NewTextHandler(&logged, nil)))
	}()

	state := func() (string, error) {
		rows, err := store.List(context.Background(), time.Minute)
		if err != nil || len(rows) == 0 {
			return "", err
		}
		return rows[0].State, nil
	}
	heraldtest.Eventually(t, 10*time.Second, "the first publish", func() (bool, error) {
		s, err := state()
		return s == delivery.BreakerClosed, err
	})
	src.status <- []delivery.BreakerStatus{{Channel: "sms", Provider: "http-sms", State: delivery.BreakerOpen, ChangedAt: time.Now()}}
	src.changed <- struct{}{}
	heraldtest.Eventually(t, 10*time.Second, "the change to be published before the hour's interval", func() (bool, error) {
		s, err := state()
		return s == delivery.BreakerOpen, err
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := store.List(context.Background(), time.Minute)
	if err != nil || len(rows) != 0 {
		t.Errorf("after stop: rows %+v, err %v; want none", rows, err)
	}
	if want := `level=WARN msg="provider circuit breaker changed state" channel=sms provider=http-sms from=closed to=open`; !strings.Contains(logged.String(), want) {
		t.Errorf("log:\n%s\nwant a line with %s", logged.String(), want)
	}
}

// An error cut at the limit stays valid UTF-8 whatever character the limit falls in, and loses
// its NULs: PostgreSQL refuses either, and with it the whole batch of the process's breakers.
func TestPublishKeepsAnyErrorWritable(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	s := breakers.New(db.Pool)
	long := strings.Repeat("a", 499) + "é" + strings.Repeat("b", 100) + "\x00"
	err := s.Publish(t.Context(), "host/1#abc", []delivery.BreakerStatus{
		{Channel: "email", Provider: "smtp", State: "open", LastError: long, ChangedAt: time.Now()},
	})
	if err != nil {
		t.Fatalf("publish an error cut inside a character: %v", err)
	}
	var got string
	if err := db.Pool.QueryRow(t.Context(), `SELECT last_error FROM provider_breakers`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || strings.Contains(got, "\x00") || len(got) > 503 {
		t.Errorf("kept %q (%d bytes), want it cut before the é, marked, at most 500 bytes and the mark", got, len(got))
	}
}
