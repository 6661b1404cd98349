package bench_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-notify/herald/bench"
)

// exactQuantile is the nearest-rank percentile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(1, min(rank, len(sorted)))-1]
}

func TestHistogramQuantilesMatchExactOnes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 0-100ms", func() time.Duration { return time.Duration(rng.Int64N(int64(100 * time.Millisecond))) }},
		{"log-normal around 5ms", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.2) * float64(5*time.Millisecond))
		}},
		{"bimodal 1ms and 2s", func() time.Duration {
			if rng.IntN(100) < 97 {
				return time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 2*time.Second + time.Duration(rng.Int64N(int64(time.Second)))
		}},
		{"sub-millisecond", func() time.Duration { return time.Duration(rng.Int64N(int64(300 * time.Microsecond))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := bench.NewHistogram()
			values := make([]time.Duration, 100_000)
			for i := range values {
				values[i] = tt.gen()
				h.Record(values[i])
			}
			for i := range values {
				// The histogram keeps microseconds.
				values[i] = values[i].Truncate(time.Microsecond)
			}
			slices.Sort(values)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				want := exactQuantile(values, q)
				got := h.Quantile(q)
				// Half a bucket: under 0.4% of the value, or a microsecond below 256µs.
				tolerance := max(time.Microsecond, time.Duration(float64(want)*0.004))
				if diff := got - want; diff > tolerance || diff < -tolerance {
					t.Errorf("q%g = %v, exact %v (off by %v, tolerance %v)", q, got, want, diff, tolerance)
				}
			}
			if got, want := h.Quantile(1), values[len(values)-1]; got != want {
				t.Errorf("q1 = %v, want the largest value %v", got, want)
			}
			if got := h.Count(); got != uint64(len(values)) {
				t.Errorf("Count = %d, want %d", got, len(values))
			}
		})
	}
}

func TestHistogramSummary(t *testing.T) {
	h := bench.NewHistogram()
	if got := h.Summary(); got != (bench.Summary{}) {
		t.Errorf("empty Summary = %+v, want zero", got)
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h.Record(-time.Second) // a clock step backwards counts as 0
	s := h.Summary()
	if s.Count != 101 || s.MinMS != 0 || s.MaxMS != 100 {
		t.Errorf("Summary = %+v, want count 101, min 0, max 100", s)
	}
	if !(s.MinMS <= s.P50MS && s.P50MS <= s.P95MS && s.P95MS <= s.P99MS && s.P99MS <= s.MaxMS) {
		t.Errorf("percentiles out of order: %+v", s)
	}
	if math.Abs(s.P50MS-50) > 0.3 || math.Abs(s.P99MS-99) > 0.5 {
		t.Errorf("p50 %v, p99 %v; want about 50 and 99", s.P50MS, s.P99MS)
	}
	if math.Abs(s.MeanMS-5050.0/101) > 0.01 {
		t.Errorf("mean %v, want %v", s.MeanMS, 5050.0/101)
	}
}

func TestHistogramExtremes(t *testing.T) {
	h := bench.NewHistogram()
	h.Record(time.Duration(math.MaxInt64))
	h.Record(time.Nanosecond)
	if got := h.Quantile(1); got != time.Duration(math.MaxInt64).Truncate(time.Microsecond) {
		t.Errorf("q1 = %v, want the largest duration", got)
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("q0.5 = %v, want 0 (a nanosecond is 0µs)", got)
	}
}

func TestHistogramMergeAndConcurrentRecords(t *testing.T) {
	a, b, all := bench.NewHistogram(), bench.NewHistogram(), bench.NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				d := time.Duration(g*1000+i) * time.Microsecond
				if g%2 == 0 {
					a.Record(d)
				} else {
					b.Record(d)
				}
				all.Record(d)
			}
		}()
	}
	wg.Wait()
	a.Merge(b)
	a.Merge(bench.NewHistogram()) // an empty one changes nothing, not even the minimum
	if got, want := a.Summary(), all.Summary(); got.Count != want.Count || got.P50MS != want.P50MS ||
		got.P99MS != want.P99MS || got.MinMS != want.MinMS || got.MaxMS != want.MaxMS || math.Abs(got.MeanMS-want.MeanMS) > 1e-9 {
		t.Errorf("merged %+v, recorded together %+v", got, want)
	}
}

func TestHistogramIsSmall(t *testing.T) {
	allocs := testing.AllocsPerRun(10, func() {
		h := bench.NewHistogram()
		for i := range 1000 {
			h.Record(time.Duration(i) * time.Millisecond)
		}
	})
	if allocs > 2 {
		t.Errorf("a histogram and 1000 records took %v allocations; recording should allocate nothing", allocs)
	}
}
