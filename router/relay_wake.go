package router

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
)

// OutboxSignal tells the relay of this process that a transaction that stored commands in the
// outbox has committed, so that its idle partitions look at once instead of at their next poll.
// One signal is shared by the Outbox the process writes through (see Outbox.WithSignal) and its
// relay (RelayConfig.Wake). It reaches only this process: a command whose partition another
// `serve` process holds waits for that partition's next poll, at most RelayConfig.IdlePollMax.
//
// A nil *OutboxSignal wakes nobody.
type OutboxSignal struct {
	mu        sync.Mutex                      // serialises listen and its cancel
	listeners atomic.Pointer[[]chan struct{}] // read without a lock by Wake
}

// NewOutboxSignal returns a signal with no relay listening yet.
func NewOutboxSignal() *OutboxSignal { return &OutboxSignal{} }

// Wake tells every listening partition to look at the outbox. It never blocks: a partition that
// has a wake-up pending already keeps one, and a partition busy forwarding looks again anyway
// once its batch is done.
func (s *OutboxSignal) Wake() {
	if s == nil {
		return
	}
	for _, c := range s.current() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// listen returns a channel that receives Wake's wake-ups, one pending at most, and the function
// that stops them.
func (s *OutboxSignal) listen() (<-chan struct{}, func()) {
	if s == nil {
		return nil, func() {}
	}
	c := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners.Store(ptr(append(slices.Clone(s.current()), c)))
	return c, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		var rest []chan struct{}
		for _, l := range s.current() {
			if l != c {
				rest = append(rest, l)
			}
		}
		s.listeners.Store(&rest)
	}
}

// current returns the channels listening now.
func (s *OutboxSignal) current() []chan struct{} {
	if l := s.listeners.Load(); l != nil {
		return *l
	}
	return nil
}

// idleBackoff is a relay partition's watermill-sql BackoffManager: how long its subscriber waits
// after each outbox query. After a query that found commands it queries again at once. After one
// that found none it waits poll, and then, while queries keep finding none, twice as long each
// time up to max: an idle relay costs a query per partition per max rather than per poll. A
// wake-up ends the wait: the partition queries once poll has passed since its last query (at
// once after a long idle), and its waits start again from poll. So a wake-up never makes a
// partition query more often than every poll, and a partition that found nothing does not look
// again before the next wake-up or the end of its wait. Errors keep watermill's backoff.
//
// HandleError waits in place of the subscriber, whose own wait cannot be ended by a wake-up; it
// returns as soon as stop is closed, with a wait the subscriber ends itself when it closes.
type idleBackoff struct {
	poll, max time.Duration
	wake      <-chan struct{} // nil: no wake-ups
	stop      <-chan struct{}
	errors    sql.BackoffManager

	// wait is the next wait after a query that found nothing; only the subscriber's loop, one
	// goroutine, calls HandleError.
	wait time.Duration
}

var _ sql.BackoffManager = (*idleBackoff)(nil)

// newIdleBackoff returns the backoff of a partition polling every poll, up to ceiling while idle,
// woken by wake, until stop is closed. A ceiling below poll is poll: a constant poll.
func newIdleBackoff(poll, ceiling time.Duration, wake, stop <-chan struct{}) *idleBackoff {
	return &idleBackoff{poll: poll, max: max(poll, ceiling), wake: wake, stop: stop,
		errors: sql.NewDefaultBackoffManager(poll, time.Second), wait: poll}
}

// HandleError returns how long the subscriber waits before its next query, after waiting itself
// while the outbox is idle.
func (b *idleBackoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil {
		b.wait = b.poll
		return b.errors.HandleError(logger, noMsg, err)
	}
	if !noMsg {
		b.wait = b.poll
		return 0
	}
	queried := time.Now()
	wait := b.wait
	b.wait = min(2*wait, b.max)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return 0
	case <-b.wake:
		b.wait = b.poll
		return max(0, b.poll-time.Since(queried))
	case <-b.stop:
		return b.poll
	}
}
