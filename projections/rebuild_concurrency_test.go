package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// A rebuild while notifications are appended and read: readers never miss one, and afterwards the
// read models equal a fold of the log — nothing applied twice or skipped across the swap.
func TestRebuildUnderLoad(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	ids := stories(t, log, 300)
	project(t, db)

	var (
		mu      sync.Mutex
		written = append([]string(nil), ids...)
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		reads   atomic.Int64
		errs    = make(chan error, 100)
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := uuid.NewString()
				if err := story(ctx, log, id); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				written = append(written, id)
				mu.Unlock()
			}
		}()
	}
	reader := projections.NewReader(db.Pool, log)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				id := written[rand.IntN(len(written))]
				mu.Unlock()
				if _, err := reader.Status(ctx, id); err != nil {
					errs <- fmt.Errorf("status of %s during the rebuild: %w", id, err)
					return
				}
				if _, err := reader.History(ctx, id); err != nil {
					errs <- fmt.Errorf("history of %s during the rebuild: %w", id, err)
					return
				}
				reads.Add(1)
			}
		}()
	}

	rb := projections.NewRebuilder(db.Pool, log, 200, discard)
	for _, p := range projections.All() {
		report, err := rb.Rebuild(ctx, p, projections.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !report.Swapped || !report.Diff.Equal() {
			t.Errorf("rebuild of %s under load: swapped %v, diff %+v; want swapped and equal", p.Name(), report.Swapped, report.Diff)
		}
		t.Logf("%s: %d events in %s", p.Name(), report.Events, report.Duration)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Fatal("no read happened during the rebuild: the test proved nothing about readers")
	}
	waitCaughtUp(t, log)
	t.Logf("%d notifications, %d reads during the rebuild", len(written), reads.Load())
	checkMatchesLog(t, db, written)
}

func TestOneRebuildAtATime(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	stories(t, log, 5)
	// Hold the first rebuild inside its first batch while a second one starts.
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := projections.NewRebuilder(db.Pool, log, 100, discard).Rebuild(ctx, blocking{projections.History{}, started, release}, projections.RebuildOptions{})
		first <- err
	}()
	<-started
	_, err := projections.NewRebuilder(db.Pool, log, 100, discard).Rebuild(ctx, projections.History{}, projections.RebuildOptions{})
	if !errors.Is(err, projections.ErrRebuildRunning) {
		t.Errorf("second rebuild: error %v, want ErrRebuildRunning", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first rebuild: %v", err)
	}
}

type blocking struct {
	projections.Rebuildable
	started, release chan struct{}
}
