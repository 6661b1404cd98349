package handlers_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/suppressions"
)

// roundTrips records what a pool sends PostgreSQL: one entry per round trip (a statement on
// its own, or a batch), each the statements it carried, first words only.
type roundTrips struct {
	mu    sync.Mutex
	trips [][]string
	batch []string // the batch being sent
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips = append(r.trips, []string{firstWords(d.SQL)})
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batch = []string{}
	return ctx
}

func (r *roundTrips) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batch = append(r.batch, firstWords(d.SQL))
}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips = append(r.trips, r.batch)
}

// take returns the round trips recorded since the last take.
func (r *roundTrips) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.trips
	r.trips = nil
	return out
}

// firstWords names a statement by its first two words: "SELECT event_id::text,", "INSERT INTO".
func firstWords(sql string) string {
	f := strings.Fields(sql)
	return strings.Join(f[:min(2, len(f))], " ")
}

// transactions counts the commits round trips cost: a BEGIN opens one that a COMMIT ends; outside
// one, each statement or batch is a transaction of its own.
func transactions(trips [][]string) int {
	n, open := 0, false
	for _, trip := range trips {
		for i, sql := range trip {
			switch {
			case sql == "BEGIN":
				open = true
			case sql == "COMMIT":
				open = false
				n++
			case !open && (i == 0 || trip[i-1] == "COMMIT"):
				n++
			}
		}
	}
	return n
}

// TestDeliverStartsInOneTransaction: with WithConns, a delivery's start (the read of the stream,
// the suppression lookup and NotificationProcessing) is one transaction in three round trips,
// BEGIN travelling with the read and COMMIT with the append; the outcome is one more. Each step
// committed alone before: four commits for the same four round trips.
func TestDeliverStartsInOneTransaction(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	trace := &roundTrips{}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = trace
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	eventLog := events.NewLog(pool)
	sms := &fakeProvider{name: "fake-sms", channel: herald.ChannelSMS}
	q := queuedOn(herald.ChannelSMS)

	const (
		read   = "SELECT event_id::text,"
		lookup = "SELECT channel,"
		append = "INSERT INTO"
	)
	tests := []struct {
		name      string
		inOneTx   bool
		wantTrips [][]string
		wantTx    int
	}{
		{name: "one transaction", inOneTx: true, wantTx: 2,
			wantTrips: [][]string{{"BEGIN", read}, {lookup}, {append, "COMMIT"}, {append}}},
		{name: "each step alone", wantTx: 4,
			wantTrips: [][]string{{read}, {lookup}, {append}, {append}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeliverer(eventLog, "w1", sms).WithSuppressions(suppressions.New(pool))
			if tt.inOneTx {
				d = d.WithConns(pool)
			}
			// The first delivery prepares the statements; the second is the steady state.
			for i := range 2 {
				id := queue(t, eventLog, q)
				trace.take()
				err := d.Deliver(ctx, commands.SendNotification{NotificationID: id, Channel: herald.ChannelSMS}, cmdMD(1))
				checkOutcome(t, err, delivered, nil)
				trips := trace.take()
				if i == 0 {
					continue
				}
				if diff := cmp.Diff(tt.wantTrips, trips); diff != "" {
					t.Errorf("round trips (-want +got):\n%s", diff)
				}
				if got := transactions(trips); got != tt.wantTx {
					t.Errorf("transactions = %d, want %d", got, tt.wantTx)
				}
				checkStream(t, eventLog, id, stream(by(apiMD, q), by(cmdMD(1),
					&events.NotificationProcessing{Attempt: 1, Worker: "w1"},
					&events.NotificationSent{Attempt: 1, Provider: "fake-sms", ProviderMessageID: "fake-sms-unscripted-1"})))
			}
		})
	}
	if n := len(sms.Calls()); n != 4 {
		t.Errorf("provider called %d times, want 4: %v", n, sms.Calls())
	}
}
