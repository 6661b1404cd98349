package delivery

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Breaker states, as BreakerStatus.State, the breakers table and `herald providers status` name
// them. Their order is the /metrics gauge's value: 0 closed, 1 half-open, 2 open.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

// BreakerStates lists the states in the order of their gauge value.
var BreakerStates = []string{BreakerClosed, BreakerHalfOpen, BreakerOpen}

// BreakerConfig says when a provider's circuit breaker opens and for how long.
type BreakerConfig struct {
	// Failures is how many transient failures in a row open the breaker. Zero means 5.
	Failures int
	// Timeout is how long an open breaker stays open before one half-open trial may go through.
	// Zero means 30s.
	Timeout time.Duration
}

const (
	defaultBreakerFailures = 5
	defaultBreakerTimeout  = 30 * time.Second
)

// ErrCircuitOpen is the error of an attempt a provider was passed over for because its circuit
// breaker is open, or half-open with its trial under way.
var ErrCircuitOpen = errors.New("circuit breaker open")

// BreakerStatus is a provider's breaker as one process sees it.
type BreakerStatus struct {
	Channel  string
	Provider string
	State    string
	// ConsecutiveFailures counts the transient failures since the provider last succeeded (or
	// refused a message for good, which proves it answers).
	ConsecutiveFailures int
	// LastError is the provider's latest transient error, masked as the provider returned it;
	// empty when it has had none since it started.
	LastError string
	// ChangedAt is when the breaker last changed state (the process's start when it never has).
	ChangedAt time.Time
}

// breaker is a provider's circuit breaker: gobreaker's state machine, and what `herald providers
// status` shows beside it.
type breaker struct {
	cb *gobreaker.CircuitBreaker[string]

	mu        sync.Mutex
	failures  int
	lastError string
	changedAt time.Time
	// changed, when set, is told of every change of state.
	changed func()
}

// newBreaker returns a closed breaker for the provider name.
func newBreaker(name string, cfg BreakerConfig, changed func()) *breaker {
	b := &breaker{changedAt: time.Now(), changed: changed}
	trip := uint32(cfg.Failures)
	if cfg.Failures <= 0 {
		trip = defaultBreakerFailures
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultBreakerTimeout
	}
	b.cb = gobreaker.NewCircuitBreaker[string](gobreaker.Settings{
		Name: name,
		// One trial at a time while half-open: the others go to the next provider meanwhile.
		MaxRequests: 1,
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trip },
		// A permanent error is the provider answering: it refused this message, not the traffic.
		IsSuccessful: func(err error) bool { return err == nil || IsPermanent(err) },
		// The attempt's own end (a shutdown) says nothing about the provider, nor does a message
		// Herald refused before contacting it: counted as a success, it would close a half-open
		// breaker on a provider nobody reached.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) || IsUnsent(err) },
		OnStateChange: func(string, gobreaker.State, gobreaker.State) {
			// gobreaker calls this holding its own lock: only note the time here.
			b.mu.Lock()
			b.changedAt = time.Now()
			b.mu.Unlock()
			if b.changed != nil {
				b.changed()
			}
		},
	})
	return b
}

// send runs send through the breaker. It returns ErrCircuitOpen, without calling send, when the
// breaker lets no request through.
func (b *breaker) send(ctx context.Context, send func() (string, error)) (string, error) {
	id, err := b.cb.Execute(send)
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "", ErrCircuitOpen
	case IsUnsent(err):
		// The provider was not contacted: its breaker learnt nothing.
	case err == nil, IsPermanent(err):
		// The provider answered: the failures and their last error are behind it.
		b.mu.Lock()
		b.failures, b.lastError = 0, ""
		b.mu.Unlock()
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
	default:
		b.mu.Lock()
		b.failures++
		b.lastError = err.Error()
		b.mu.Unlock()
	}
	return id, err
}

// state is the breaker's state by name.
func (b *breaker) state() string {
	switch b.cb.State() {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// status reports the breaker. Reading the state lets an open breaker whose timeout passed turn
// half-open, as gobreaker does on any request.
func (b *breaker) status() BreakerStatus {
	state := b.state()
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerStatus{Provider: b.cb.Name(), State: state, ConsecutiveFailures: b.failures,
		LastError: b.lastError, ChangedAt: b.changedAt}
}

// gauge is a breaker state's value on /metrics.
func gauge(state string) float64 {
	for i, s := range BreakerStates {
		if s == state {
			return float64(i)
		}
	}
	return 0
}
