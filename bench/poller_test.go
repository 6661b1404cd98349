package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestPollerWatchesUntilTerminal drives the poller against a status API that says processing
// twice, then sent (or failed, for one notification): each settles, sent ones cost an events
// request for their projection lag, and the gaps between polls are measured.
func TestPollerWatchesUntilTerminal(t *testing.T) {
	start := time.Now()
	cfg := DefaultConfig()
	cfg.N, cfg.PollInterval, cfg.PollRate = 4, 5*time.Millisecond, 2000
	r := newRunner(cfg, start)
	sentAt := start.Add(-time.Millisecond) // before any poll: the lag is never negative
	var mu sync.Mutex
	asked := map[string]int{}
	failing := uuid.NewSHA1(uuid.NameSpaceOID, []byte{3}).String()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := strings.Split(req.URL.Path, "/")[4]
		if strings.HasSuffix(req.URL.Path, "/events") {
			fmt.Fprintf(w, `{"events":[{"type":"NotificationQueued","time":%q},{"type":"NotificationSent","time":%q}]}`,
				start.Add(-time.Second).Format(time.RFC3339Nano), sentAt.Format(time.RFC3339Nano))
			return
		}
		mu.Lock()
		asked[id]++
		n := asked[id]
		mu.Unlock()
		switch {
		case n < 3:
			fmt.Fprint(w, `{"status":"processing"}`)
		case id == failing:
			fmt.Fprint(w, `{"status":"failed"}`)
		default:
			fmt.Fprint(w, `{"status":"sent"}`)
		}
	}))
	defer api.Close()
	r.base = api.URL

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.poller.run(ctx); close(done) }()
	for i := range cfg.N {
		r.t.accept(i, uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}), time.Now())
		r.poller.add(i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.poller.outstanding() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done

	p := r.poller
	if n := p.outstanding(); n != 0 {
		t.Fatalf("%d notifications still watched after 10s", n)
	}
	if p.seenSent.Load() != 3 || p.seenFailed.Load() != 1 || p.getErrors.Load() != 0 {
		t.Errorf("seen %d sent, %d failed, %d errors; want 3, 1, 0", p.seenSent.Load(), p.seenFailed.Load(), p.getErrors.Load())
	}
	if p.statusGETs.Load() != 12 || p.eventsGETs.Load() != 3 {
		t.Errorf("%d status and %d events GETs, want 12 and 3", p.statusGETs.Load(), p.eventsGETs.Load())
	}
	if p.projectionLag.Count() != 3 || p.acceptToSent.Count() != 3 || p.negativeLag.Load() != 0 {
		t.Errorf("%d lags, %d accept→sent, %d negative; want 3, 3, 0", p.projectionLag.Count(), p.acceptToSent.Count(), p.negativeLag.Load())
	}
	if gaps := p.gaps.Load(); gaps != 8 || time.Duration(p.gapSum.Load()/gaps) < cfg.PollInterval {
		t.Errorf("%d gaps averaging %s, want 8 of at least %s", gaps, time.Duration(p.gapSum.Load()/max(gaps, 1)), cfg.PollInterval)
	}
	for i := range cfg.N {
		if !r.t.terminal(i) {
			t.Errorf("notification %d is not marked terminal", i)
		}
	}
}
