package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	heraldhttp "github.com/herald-notify/herald/http"
)

func TestBucketsTileEveryValue(t *testing.T) {
	// Consecutive buckets are contiguous, and each is at most 1/128 of its lower bound wide.
	var next uint64
	for i := 0; i < histogramBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if hi < lo || (lo >= 256 && float64(hi-lo+1)/float64(lo) > 1.0/128) {
			t.Fatalf("bucket %d is [%d, %d]", i, lo, hi)
		}
		if i == histogramBuckets-1 {
			if hi != math.MaxUint64 {
				t.Fatalf("last bucket ends at %d, want MaxUint64", hi)
			}
			break
		}
		next = hi + 1
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		v := rng.Uint64() >> rng.IntN(64)
		lo, hi := bucketBounds(bucketOf(v))
		if v < lo || v > hi {
			t.Fatalf("%d is in bucket %d = [%d, %d]", v, bucketOf(v), lo, hi)
		}
	}
}

func TestRecipientsCarryTheirNumber(t *testing.T) {
	for _, i := range []int{0, 1, 9, 10, 12345, 999_999_999} {
		for _, r := range []string{emailRecipient(i), smsRecipient(i), "<" + strings.ToUpper(emailRecipient(i)) + ">"} {
			if got := recipientIndex(r); got != i {
				t.Errorf("recipientIndex(%q) = %d, want %d", r, got, i)
			}
		}
		if err := herald.ValidateRecipient(herald.ChannelEmail, emailRecipient(i)); err != nil {
			t.Errorf("%s: %v", emailRecipient(i), err)
		}
		if err := herald.ValidateRecipient(herald.ChannelSMS, smsRecipient(i)); err != nil {
			t.Errorf("%s: %v", smsRecipient(i), err)
		}
	}
	for _, r := range []string{"", "ada@example.com", "b12@other.test", "bx@bench.herald.test", "+15550100001", "+1999123", "b-1@bench.herald.test"} {
		if got := recipientIndex(r); got != -1 {
			t.Errorf("recipientIndex(%q) = %d, want -1", r, got)
		}
	}
}

func TestSMSRatioIsExactAndSpread(t *testing.T) {
	for _, ratio := range []float64{0, 0.1, 0.25, 0.5, 0.9, 1} {
		sms, longestRun, run := 0, 0, 0
		for i := range 10_000 {
			if isSMS(i, ratio) {
				sms++
				run = 0
			} else {
				run++
				longestRun = max(longestRun, run)
			}
		}
		if want := int(10_000 * ratio); sms < want-1 || sms > want+1 {
			t.Errorf("ratio %g: %d SMS of 10000, want %d", ratio, sms, want)
		}
		if ratio > 0 && float64(longestRun) > 1/ratio+1 {
			t.Errorf("ratio %g: %d emails in a row; want them spread", ratio, longestRun)
		}
	}
}

func TestBodiesAreValidRequests(t *testing.T) {
	for _, i := range []int{0, 1, 77} {
		var req struct {
			Type, Recipient, Subject, Content string
			Variables                         map[string]any
		}
		if err := json.Unmarshal(body(i, 0.5, false), &req); err != nil {
			t.Fatalf("body(%d): %v\n%s", i, err, body(i, 0.5, false))
		}
		if recipientIndex(req.Recipient) != i || req.Variables["n"] != float64(i) || !strings.Contains(req.Content, "{{.name}}") {
			t.Errorf("body(%d) = %+v", i, req)
		}
		if want := map[bool]string{true: "sms", false: "email"}[isSMS(i, 0.5)]; req.Type != want {
			t.Errorf("body(%d) type %q, want %q", i, req.Type, want)
		}
	}
}

func TestTrackerCountsEachNotificationOnce(t *testing.T) {
	start := time.Now()
	tr := newTracker(4, start)
	id0, id1 := uuid.New(), uuid.New()

	// Notification 1 arrives before its 202 is read: whichever comes second sees the other.
	if first, accepted := tr.deliver(1, id1.String(), start.Add(time.Millisecond)); !first || accepted {
		t.Errorf("early delivery: first %v accepted %v, want true false", first, accepted)
	}
	if delivered := tr.accept(1, id1, start.Add(2*time.Millisecond)); !delivered {
		t.Error("accept after delivery did not see it")
	}
	if delivered := tr.accept(0, id0, start.Add(time.Millisecond)); delivered {
		t.Error("accept before delivery saw one")
	}
	if first, accepted := tr.deliver(0, id0.String(), start.Add(5*time.Millisecond)); !first || !accepted {
		t.Errorf("delivery: first %v accepted %v, want true true", first, accepted)
	}
	// A duplicate, one with another id, and strangers.
	tr.deliver(0, id0.String(), start.Add(6*time.Millisecond))
	tr.deliver(1, id0.String(), start.Add(7*time.Millisecond))
	tr.deliver(-1, "", start)
	tr.deliver(4, "", start)

	if got := tr.distinct.Load(); got != 2 {
		t.Errorf("distinct = %d, want 2", got)
	}
	if got := tr.arrivals.Load(); got != 4 {
		t.Errorf("arrivals = %d, want 4", got)
	}
	if got := tr.unexpected.Load(); got != 2 {
		t.Errorf("unexpected = %d, want 2", got)
	}
	if got := tr.hashMismatch.Load(); got != 1 {
		t.Errorf("hashMismatch = %d, want 1", got)
	}
	if got := tr.at(tr.lastDelivery.Load()); !got.Equal(start.Add(5 * time.Millisecond)) {
		t.Errorf("last first delivery at %v, want start+5ms", got.Sub(start))
	}
	if tr.id(0) != id0.String() || tr.deliveredHash[0].Load() != idHash(strings.ToUpper(id0.String())) {
		t.Error("ids do not round-trip")
	}
}

// A million notifications must not cost more than about 50 MB of bench memory.
func TestTrackerMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 50 MB")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := newTracker(1_000_000, time.Now())
	runtime.ReadMemStats(&after)
	perNotification := float64(after.TotalAlloc-before.TotalAlloc) / 1e6
	if perNotification > 48 {
		t.Errorf("tracker takes %.1f bytes per notification, want at most 48", perNotification)
	}
	runtime.KeepAlive(tr)
}

func TestSampleIsIndependentOfTheChannel(t *testing.T) {
	for _, every := range []int{1, 3, 10, 100} {
		var n, sms int
		for i := range 100_000 {
			if sampled(i, every) {
				n++
				if isSMS(i, 0.5) {
					sms++
				}
			}
		}
		// Within four standard deviations of a fair draw.
		if want := 100_000 / every; math.Abs(float64(n-want)) > 4*math.Sqrt(float64(want)) {
			t.Errorf("every %d: %d sampled of 100000, want about %d", every, n, want)
		}
		if share := float64(sms) / float64(n); share < 0.45 || share > 0.55 {
			t.Errorf("every %d: %.2f of the sample are SMS, want about half", every, share)
		}
	}
	if sampled(5, 0) {
		t.Error("sampled with every 0")
	}
}

// With --html every email carries the newsletter, which the API decodes and accepts as it
// stands: the same template the Go benchmarks render, with all ten variables.
func TestHTMLBodiesAreValidRequests(t *testing.T) {
	a := handlers.NewAcceptor(nil, nil, nil, handlers.DefaultLimits)
	for _, i := range []int{0, 1, 77} {
		raw := body(i, 0.5, true)
		r := httptest.NewRequest(http.MethodPost, "/api/v1/notifications/send", bytes.NewReader(raw))
		r.Header.Set("Content-Type", "application/json")
		req, err := heraldhttp.DecodeSend(r, httptest.NewRecorder(), heraldhttp.DefaultMaxBodyBytes)
		if err != nil {
			t.Fatalf("body(%d) does not decode: %v", i, err)
		}
		if recipientIndex(req.Recipient) != i {
			t.Errorf("body(%d) recipient %q", i, req.Recipient)
		}
		if isSMS(i, 0.5) {
			if req.HTML != "" || req.Type != "sms" {
				t.Errorf("body(%d) is an SMS of type %q with html %q", i, req.Type, req.HTML)
			}
			continue
		}
		if req.Type != "email" || req.HTML != newsletter || req.Content != "" || len(req.Variables) != 10 {
			t.Errorf("body(%d): type %q, html of %d bytes, content %q, %d variables; want the newsletter alone, with 10",
				i, req.Type, len(req.HTML), req.Content, len(req.Variables))
		}
		q, err := a.Validate(req)
		if err != nil {
			t.Fatalf("body(%d) is not accepted: %v", i, err)
		}
		if !strings.Contains(q.RenderedHTML, "Reference "+strconv.Itoa(i)+".") || !strings.Contains(q.Body, "Hello Ada,") {
			t.Errorf("body(%d) renders to html %.200q…, text %.200q…", i, q.RenderedHTML, q.Body)
		}
	}
}
