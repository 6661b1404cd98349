package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// subBits sets the histogram's precision: values are kept in buckets whose width is at most
// 1/2^(subBits-1) of their lower bound, so a percentile is off by less than 0.8 %.
const subBits = 8

// histogramBuckets covers every uint64: 2^subBits exact buckets, then 2^(subBits-1) per power
// of two above them.
const histogramBuckets = (64-subBits+1)<<(subBits-1) + 1<<(subBits-1)

// Histogram records durations in microseconds in a fixed number of log-linear buckets (about
// 58 KiB whatever the number of values), so a million latencies cost no more than ten. The
// smallest and largest values, the count and the sum are kept exactly. It is safe for concurrent
// use.
type Histogram struct {
	mu       sync.Mutex
	counts   []uint64
	n        uint64
	sum      float64 // microseconds
	min, max uint64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histogramBuckets), min: math.MaxUint64}
}

// bucketOf returns the bucket of v.
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	top := v >> shift // in [2^(subBits-1), 2^subBits)
	return shift<<(subBits-1) + int(top)
}

// bucketBounds returns the smallest and largest values bucket i holds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < 1<<subBits {
		return uint64(i), uint64(i)
	}
	shift := i>>(subBits-1) - 1
	top := uint64(i - shift<<(subBits-1))
	lo = top << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds d; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.mu.Lock()
	h.counts[bucketOf(us)]++
	h.n++
	h.sum += float64(us)
	h.min = min(h.min, us)
	h.max = max(h.max, us)
	h.mu.Unlock()
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	counts := append([]uint64(nil), o.counts...)
	n, sum, lo, hi := o.n, o.sum, o.min, o.max
	o.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range counts {
		h.counts[i] += c
	}
	h.n += n
	h.sum += sum
	if n > 0 {
		h.min = min(h.min, lo)
		h.max = max(h.max, hi)
	}
}

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile returns the value below or at which a fraction q (0 < q ≤ 1) of the values lie: the
// nearest-rank percentile, reported as the middle of its bucket and never outside the smallest
// and largest values recorded (q = 1 is the largest exactly). It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quantileLocked(q)
}

// quantileLocked is Quantile for a caller that holds h.mu, such as Summary, which reads several.
func (h *Histogram) quantileLocked(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	if rank == h.n {
		return time.Duration(h.max) * time.Microsecond
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, hi := bucketBounds(i)
		v := lo + (hi-lo)/2
		v = max(h.min, min(v, h.max))
		return time.Duration(v) * time.Microsecond
	}
	return time.Duration(h.max) * time.Microsecond
}

// Summary is a histogram's figures in milliseconds, as the report shows them.
type Summary struct {
	Count  uint64  `json:"count"`
	MinMS  float64 `json:"min_ms"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summary returns the histogram's count, mean, percentiles and extremes.
func (h *Histogram) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return Summary{}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		Count:  h.n,
		MinMS:  float64(h.min) / 1000,
		MeanMS: h.sum / float64(h.n) / 1000,
		P50MS:  ms(h.quantileLocked(0.50)),
		P90MS:  ms(h.quantileLocked(0.90)),
		P95MS:  ms(h.quantileLocked(0.95)),
		P99MS:  ms(h.quantileLocked(0.99)),
		MaxMS:  float64(h.max) / 1000,
	}
}
