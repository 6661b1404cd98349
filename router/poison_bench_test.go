package router_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// BenchmarkPoisonPage measures one page of 50 of a deep poison queue (HERALD_BENCH_PARKED
// commands, 100,000 by default, 2,000 with -short), at its head, its middle and its end, and,
// for comparison, taking the whole queue into memory as listing did before pages. It reports
// the peak of live heap during the operation (peak-heap-MB) besides the time.
//
// The parked commands name notifications the log does not know, so each page's state lookups
// find nothing; with real notifications each lookup reads a few rows more.
func BenchmarkPoisonPage(b *testing.B) {
	n := 100_000
	if testing.Short() {
		// The one pass of each benchmark that keeps it from rotting: parking 100,000 commands
		// and walking them takes a minute and a half.
		n = 2_000
	}
	if v := os.Getenv("HERALD_BENCH_PARKED"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("HERALD_BENCH_PARKED=%q: want a number from 100", v)
		}
	}
	amqpURL := heraldtest.NewVHost(b)
	declareQueues(b, amqpURL)
	parkMany(b, amqpURL, n)
	op := newBenchOperator(b, amqpURL)
	ctx := context.Background()

	for _, at := range []struct {
		name string
		pos  int
	}{{"first", 0}, {"middle", n / 2}, {"last", n - 50}} {
		b.Run(at.name, func(b *testing.B) {
			q := handlers.ParkedQuery{Limit: 50, Cursor: cursorAt(at.pos)}
			peak := measurePeakHeap(b, func() {
				page, err := op.ParkedPage(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Parked) != 50 {
					b.Fatalf("page at %d holds %d messages, want 50", at.pos, len(page.Parked))
				}
			})
			b.ReportMetric(peak, "peak-heap-MB")
		})
	}
	b.Run("list-all", func(b *testing.B) {
		pq := router.NewPoisonQueue(amqpURL, nil)
		peak := measurePeakHeap(b, func() {
			msgs, err := pq.List(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) != n {
				b.Fatalf("listed %d, want %d", len(msgs), n)
			}
		})
		b.ReportMetric(peak, "peak-heap-MB")
	})
}

// cursorAt is a cursor whose page starts at position pos: it names no message that is parked,
// so the page starts at its position, after a walk over every message before it as a real
// cursor's page does.
func cursorAt(pos int) string {
	if pos == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"p":%d,"m":["0000000000000000"]}`, pos))
}

// measurePeakHeap runs op b.N times and returns the highest live heap seen while it ran, in MB.
func measurePeakHeap(b *testing.B, op func()) float64 {
	b.Helper()
	runtime.GC()
	// Heap objects, live or not yet collected: an upper bound of what the operation holds.
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		mu   sync.Mutex
		peak uint64
	)
	read := func() {
		metrics.Read(sample)
		mu.Lock()
		peak = max(peak, sample[0].Value.Uint64())
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				read()
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		op()
	}
	b.StopTimer()
	close(stop)
	<-done
	read()
	return float64(peak) / (1 << 20)
}

func declareQueues(b *testing.B, amqpURL string) {
	b.Helper()
	ch := heraldtest.AMQPChannel(b, amqpURL)
	defer ch.Close()
	cfg := router.AMQPConfig{URL: amqpURL, QueueType: "quorum", Prefetch: 1, PublishChannels: 1}
	if err := cfg.Declare(ch); err != nil {
		b.Fatal(err)
	}
}
