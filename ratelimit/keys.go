package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KeyLimit is the bound on each key (an API key): Requests per Window, from all the processes
// that share it together.
type KeyLimit struct {
	Requests int
	Window   time.Duration
}

// PerSecond is the rate the bucket of a key earns tokens at.
func (k KeyLimit) PerSecond() float64 { return float64(k.Requests) / k.Window.Seconds() }

// Burst is how many requests a key that was idle may make at once: a whole window's allowance,
// as a client reading "N per window" expects.
func (k KeyLimit) Burst() int { return k.Requests }

// Lease is how many tokens a process takes from a key's shared bucket at a time, to hand out
// itself without asking again: a tenth of the window's allowance, at least one.
func (k KeyLimit) Lease() int { return max(1, k.Requests/10) }

// MostAllowed is the most requests of one key that processes together let through within any
// span d: what the shared bucket holds at the start of it (the burst) and earns during it, and
// the tokens each process may still hold from a lease taken before it. Leases returned unused
// are never given back, so the bound errs only on the side of refusing.
func (k KeyLimit) MostAllowed(d time.Duration, processes int) int {
	return k.Burst() + int(math.Floor(k.PerSecond()*d.Seconds())) + processes*k.Lease()
}

// Keys holds each key to a KeyLimit across every process sharing the database: one token bucket
// per key in table rate_limits (named "apikey:<key>"), as Buckets keeps one per provider. A
// process leases tokens a Lease at a time and hands them out locally, so a request asks the
// database only when its process's lease of that key has run out; a key whose bucket is empty
// is refused locally, without asking, until a full lease is due again.
//
// When the database cannot be reached the key is let through (fail open): for a second, its
// requests pass unchecked, with a warning logged and herald_api_rate_limit_unchecked_total
// counting them, before it asks again. A request that gets through needs the database anyway.
type Keys struct {
	db      DB
	limit   KeyLimit
	metrics *KeyMetrics
	logger  *slog.Logger

	mu   sync.Mutex
	keys map[string]*keyLease
}

// keyLease is what this process holds of one key's bucket.
type keyLease struct {
	mu         sync.Mutex
	tokens     int       // leased and not yet handed out
	expires    time.Time // when the unused tokens lapse: a lease is good for one window
	emptyUntil time.Time // the bucket had too few tokens: refuse without asking until then
	openUntil  time.Time // the bucket could not be reached: let requests through until then
}

// failOpenFor is how long a key's requests pass unchecked after its bucket could not be reached.
const failOpenFor = time.Second

// NewKeys returns a limiter holding each key to limit, sharing the buckets through db. metrics
// may be nil.
func NewKeys(db DB, limit KeyLimit, metrics *KeyMetrics, logger *slog.Logger) *Keys {
	return &Keys{db: db, limit: limit, metrics: metrics, logger: logger, keys: map[string]*keyLease{}}
}

// Allow takes one of key's tokens and reports whether the request may pass now. It never waits
// for a token: an empty bucket is an answer, false. It asks the database at most once per lease,
// and the ask is bounded by a timeout of its own, not by ctx, so that a client hanging up does not
// waste a lease.
func (l *Keys) Allow(ctx context.Context, key string) bool {
	k := l.lease(key)
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	if k.tokens > 0 && now.Before(k.expires) {
		k.tokens--
		return true
	}
	if now.Before(k.openUntil) {
		l.metrics.unchecked()
		return true
	}
	if now.Before(k.emptyUntil) {
		return false
	}
	want := l.limit.Lease()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	granted, left, err := takeTokens(ctx, l.db, "apikey:"+key, l.limit.PerSecond(), l.limit.Burst(), want)
	if err != nil {
		k.tokens, k.openUntil = 0, time.Now().Add(failOpenFor)
		l.metrics.took("error", 0)
		l.metrics.unchecked()
		l.logger.Warn("API key rate limit unreachable: letting the key's requests through unchecked",
			"api_key_id", key, "for", failOpenFor, "error", err)
		return true
	}
	now = time.Now()
	if granted < want {
		// Not asking again before a whole lease is due keeps a key that is over its limit at one
		// question per lease, however hard it pushes.
		k.emptyUntil = now.Add(max(time.Millisecond, time.Duration((float64(want)-left)/l.limit.PerSecond()*float64(time.Second))))
	}
	if granted == 0 {
		l.metrics.took("empty", 0)
		return false
	}
	l.metrics.took("granted", granted)
	k.tokens, k.expires = granted-1, now.Add(l.limit.Window)
	return true
}

// lease returns this process's lease of key, made on first use. Keys are API keys, which an
// operator makes: the map grows with them, not with the requests.
func (l *Keys) lease(key string) *keyLease {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.keys[key]
	if !ok {
		k = &keyLease{}
		l.keys[key] = k
	}
	return k
}

// KeyMetrics are the API key limiter's: its questions to the shared buckets, the tokens they
// leased, and the requests let through unchecked.
type KeyMetrics struct {
	takes        *prometheus.CounterVec
	leased       prometheus.Counter
	uncheckedReq prometheus.Counter
}

// NewKeyMetrics returns the API key limiter's metrics, registered with reg.
func NewKeyMetrics(reg prometheus.Registerer) *KeyMetrics {
	m := &KeyMetrics{
		takes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_api_rate_limit_takes_total",
			Help: "Times this process asked the API keys' shared rate limit buckets for a lease, by result: granted, empty (the key is over its limit) or error (the database could not be reached).",
		}, []string{"result"}),
		leased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_api_rate_limit_tokens_leased_total",
			Help: "Tokens this process leased from the API keys' shared rate limit buckets.",
		}),
		uncheckedReq: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_api_rate_limit_unchecked_total",
			Help: "Requests let through without the API key rate limit because its shared bucket could not be reached.",
		}),
	}
	reg.MustRegister(m.takes, m.leased, m.uncheckedReq)
	return m
}

func (m *KeyMetrics) took(result string, tokens int) {
	if m == nil {
		return
	}
	m.takes.WithLabelValues(result).Inc()
	m.leased.Add(float64(tokens))
}

func (m *KeyMetrics) unchecked() {
	if m != nil {
		m.uncheckedReq.Inc()
	}
}
