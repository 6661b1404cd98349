package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/wire"
)

// TestProvidersStatus: the command shows what the workers recorded, a silent worker's rows as
// stale, in a table and as JSON.
func TestProvidersStatus(t *testing.T) {
	commandSettings(t)
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	run := func(args ...string) string {
		t.Helper()
		return mustRunHerald(t, append(append([]string{"providers", "status"}, args...), "--database-url", db.URL)...)
	}

	if out := run(); !strings.Contains(out, "No worker has recorded a circuit breaker") {
		t.Errorf("empty table:\n%s", out)
	}

	store := breakers.New(db.Pool)
	changed := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if err := store.Publish(ctx, "w1/10", []delivery.BreakerStatus{
		{Channel: "email", Provider: "smtp", State: delivery.BreakerOpen, ConsecutiveFailures: 5,
			LastError: "smtp send n1 via 127.0.0.1:25: connect: connection refused", ChangedAt: changed},
		{Channel: "email", Provider: "smtp-2", State: delivery.BreakerClosed, ChangedAt: changed},
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.Publish(ctx, "w2/20", []delivery.BreakerStatus{
		{Channel: "email", Provider: "smtp", State: delivery.BreakerClosed, ChangedAt: changed},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE provider_breakers SET updated_at = now() - interval '5 minutes' WHERE process = 'w2/20'`); err != nil {
		t.Fatal(err)
	}

	table := run()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "CHANNEL") {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(lines), table)
	}
	for i, want := range []string{"email smtp open 5", "email smtp closed (stale) 0", "email smtp-2 closed 0"} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.HasPrefix(got, want+" ") {
			t.Errorf("row %d = %q, want it to start %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[1], "connection refused") {
		t.Errorf("row 1 = %q, want the last error", lines[1])
	}

	var got wire.ProviderStatusList
	if err := json.Unmarshal([]byte(run("-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	rows, err := store.List(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wire.NewProviderStatusList(rows), got); diff != "" {
		t.Errorf("-o json (-want +got):\n%s", diff)
	}
	if len(got.Providers) != 3 || !got.Providers[1].Stale || got.Providers[0].Stale || got.Providers[0].State != "open" {
		t.Errorf("-o json = %+v, want w1's smtp open, w2's stale", got.Providers)
	}

	// A longer --stale-after: nothing is stale.
	if strings.Contains(run("--stale-after", "1h"), "stale") {
		t.Error("--stale-after 1h still marks a row written 5 minutes ago stale")
	}
}
