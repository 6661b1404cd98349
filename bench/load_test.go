package bench

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// recordedRun is a runner as a spawned run leaves it for finish: twelve notifications, ten
// accepted, eight of them delivered (one twice, one carrying another id), one delivery that no
// 202 answered and one to a stranger, two refused POSTs, a drain that gave up and a ceiling.
func recordedRun(t *testing.T) (*runner, *Report) {
	t.Helper()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.N, cfg.Sample, cfg.Rate = 12, 2, 100
	r := newRunner(cfg, start)
	r.sinks = true
	ms := func(n int) time.Time { return start.Add(time.Duration(n) * time.Millisecond) }
	ids := make([]uuid.UUID, cfg.N)
	for i := range ids {
		ids[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)})
	}
	for i := 0; i < 10; i++ {
		r.t.accept(i, ids[i], ms(i))
		r.apiLatency.Record(time.Duration(i+1) * time.Millisecond)
	}
	for i := 0; i < 8; i++ {
		id := ids[i].String()
		if i == 5 {
			id = ids[6].String()
		}
		r.t.deliver(i, id, ms(i+10+i))
	}
	r.t.deliver(3, ids[3].String(), ms(40))
	r.t.deliver(10, ids[10].String(), ms(41))
	r.t.deliver(-1, "", ms(42))

	r.posted.Store(11)
	r.accepted.Store(10)
	r.errs.add("503 unavailable", "503 Service Unavailable: busy")
	r.errs.add("transport: timeout", "context deadline exceeded")
	r.firstPost.Store(r.t.since(ms(0)))
	r.lastAnswer.Store(r.t.since(ms(50)))
	r.maxStartDelay.Store(int64(12 * time.Millisecond))
	r.lateStarts.Store(1)
	r.cpuBusy, r.otherCPU, r.benchCPU = 0.5, time.Second, 2*time.Second

	p := r.poller
	p.seenSent.Store(2)
	p.seenFailed.Store(1)
	p.statusGETs.Store(7)
	p.eventsGETs.Store(2)
	p.getErrors.Store(1)
	p.gapSum.Store(int64(60 * time.Millisecond))
	p.gaps.Store(3)
	p.viaLogFold.Store(1)
	p.acceptToSent.Record(30 * time.Millisecond)
	p.projectionLag.Record(4 * time.Millisecond)

	r.final = terminalCounts{sent: 8, failed: 1, nonTerminal: 1, known: 10}
	r.drained, r.drainTimedOut = 2*time.Second, true
	rep := &Report{Problems: []string{}, Warnings: []string{},
		Ceiling: &CeilingReport{Seconds: 1, Skeleton: &SkeletonReport{DeliveredPerSec: 800}, AMQP: &AMQPCeiling{ConsumedPerSec: 1000}, PostgresBest: 4000}}
	return r, rep
}

// TestFinishComputesEveryFigure pins what finish and verdict make of a recorded run.
func TestFinishComputesEveryFigure(t *testing.T) {
	r, rep := recordedRun(t)
	r.finish(rep, 1)
	if rep.Finished.IsZero() {
		t.Error("finish left Finished unset")
	}
	rep.Finished = time.Time{}
	var got bytes.Buffer
	if err := rep.WriteJSON(&got); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "finish.json.golden")
	// The flag is defined by the external tests, which share this binary.
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./bench -run Finish -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("report mismatch (-want +got; go test ./bench -run Finish -update if intended):\n%s", diff)
	}
}

// TestFinishOfAnInterruptedRun: what did not arrive had no time to, so nothing is lost and
// the one problem is the interruption.
func TestFinishOfAnInterruptedRun(t *testing.T) {
	r, rep := recordedRun(t)
	r.interrupted = "interrupted"
	r.finish(rep, 0)
	if rep.OK || rep.Outcome.Settled || rep.Outcome.Lost != 0 {
		t.Errorf("ok %v, settled %v, lost %d; want false, false, 0", rep.OK, rep.Outcome.Settled, rep.Outcome.Lost)
	}
	want := []string{"the run stopped after 11 of 12 POSTs, before the outcome was settled: interrupted"}
	if diff := cmp.Diff(want, rep.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestFinishWithoutSinks: against --url nothing is delivered to the bench, so there are no
// delivery figures nor ratios, and the statuses come from the status API.
func TestFinishWithoutSinks(t *testing.T) {
	r, rep := recordedRun(t)
	r.sinks = false
	r.finish(rep, 0)
	if rep.Delivery != nil || rep.Ceiling.DeliveredOverAMQP != nil || rep.Ceiling.DeliveredOverPGCommits != nil {
		t.Errorf("delivery %+v, ratios %v %v; want none", rep.Delivery, rep.Ceiling.DeliveredOverAMQP, rep.Ceiling.DeliveredOverPGCommits)
	}
	var sampledAccepted int64
	for i := 0; i < 10; i++ {
		if sampled(i, 2) {
			sampledAccepted++
		}
	}
	if rep.Status.Sampled != sampledAccepted || rep.Outcome.Source != "status API" {
		t.Errorf("sampled %d, source %q; want %d, status API", rep.Status.Sampled, rep.Outcome.Source, sampledAccepted)
	}
}

// TestStoreMaxKeepsTheLargest: concurrent writers, in any order, leave the largest value.
func TestStoreMaxKeepsTheLargest(t *testing.T) {
	var v atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range int64(1000) {
				storeMax(&v, (x*7+int64(w)*131)%1000)
			}
		}()
	}
	wg.Wait()
	if got := v.Load(); got != 999 {
		t.Errorf("storeMax left %d, want 999", got)
	}
	storeMax(&v, 5)
	if got := v.Load(); got != 999 {
		t.Errorf("a smaller value lowered it to %d", got)
	}
}
