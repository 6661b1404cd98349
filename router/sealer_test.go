package router_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/router"
)

// Two sealers on one log: one seals, the other stands by (both ready); the log's growth is
// sealed every interval, each checkpoint handed to OnCheckpoint once, in order, and the
// checkpoints verify. A log that does not grow gets no more checkpoints.
func TestSealersTakeTurnsAndSealOnlyGrowth(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, key, _ := ed25519.GenerateKey(nil)
	var mu sync.Mutex
	var copied []int64
	cfg := router.SealerConfig{Interval: 50 * time.Millisecond, OnCheckpoint: func(_ context.Context, cp ledger.Checkpoint) error {
		mu.Lock()
		defer mu.Unlock()
		copied = append(copied, cp.Seq)
		return nil
	}}
	logger := slog.New(slog.DiscardHandler)
	sealers := []*router.Sealer{router.NewSealer(db.Pool, key, cfg, logger), router.NewSealer(db.Pool, key, cfg, logger)}
	var wg sync.WaitGroup
	for _, s := range sealers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	defer wg.Wait()
	defer cancel()

	log := events.NewLog(db.Pool)
	for i := range 3 {
		if _, err := log.Append(ctx, uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		want := int64(i + 1)
		heraldtest.Eventually(t, 30*time.Second, "a checkpoint of the new event", func() (bool, error) {
			var size int64
			err := db.Pool.QueryRow(ctx, `SELECT coalesce(max(tree_size), 0) FROM checkpoints`).Scan(&size)
			return size == want, err
		})
	}
	// OnCheckpoint runs after the checkpoint's commit: wait for the third to be handed out too.
	heraldtest.Eventually(t, 30*time.Second, "the third checkpoint handed to OnCheckpoint", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(copied) >= 3, nil
	})
	for i, s := range sealers {
		if err := s.Ready(ctx); err != nil {
			t.Errorf("sealer %d not ready: %v", i, err)
		}
	}
	// Several intervals with no growth: no checkpoint more.
	var before int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * cfg.Interval) // a stretch of idle intervals is the behaviour under test
	var after int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if before != 3 || after != 3 {
		t.Errorf("%d checkpoints for 3 appends, then %d after idle intervals; want 3 and 3", before, after)
	}
	mu.Lock()
	if !slices.Equal(copied, []int64{1, 2, 3}) {
		t.Errorf("checkpoints handed out: %v, want [1 2 3]", copied)
	}
	mu.Unlock()
	if _, err := ledger.Verify(ctx, db.Pool, ledger.VerifyOptions{Keys: ledger.NewKeys(key.Public().(ed25519.PublicKey))}); err != nil {
		t.Error(err)
	}
}

// A sealer whose witness holds a checkpoint the database does not have refuses to sign, says so
// in herald_sealer_refusing, and writes nothing.
func TestSealerRefusingIsAnAlert(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := events.NewLog(db.Pool).Append(ctx, uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	witnessed := &ledger.Checkpoint{Seq: 3, TreeSize: 7}
	cfg := router.SealerConfig{Interval: 50 * time.Millisecond, Metrics: reg,
		Witness: func(context.Context) (*ledger.Checkpoint, error) { return witnessed, nil }}
	s := router.NewSealer(db.Pool, key, cfg, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	heraldtest.Eventually(t, 30*time.Second, "herald_sealer_refusing at 1", func() (bool, error) {
		n, err := testutil.GatherAndCount(reg, "herald_sealer_refusing")
		if err != nil || n != 1 {
			return false, err
		}
		mfs, err := reg.Gather()
		return err == nil && mfs[0].GetMetric()[0].GetGauge().GetValue() == 1, err
	})
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d checkpoints written by a refusing sealer (%v), want 0", n, err)
	}
}
