package router_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// waitLog counts the "waiting for another look" records of a logger.
type waitLog struct {
	mu sync.Mutex
	n  int
}

func (w *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *waitLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "waiting for another look at the poison queue to finish" {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return nil
}
func (w *waitLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *waitLog) WithGroup(string) slog.Handler      { return w }
func (w *waitLog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Two walks and a removal, each on its own connection as from separate processes, take turns:
// each walk sees every message parked exactly once, and the removal removes every message it
// names, including one a walk was holding when it asked.
func TestPoisonQueueLooksOneAtATime(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	const parked = 2000
	var (
		cmds     []parkedCommand
		notified []string
		all      []string
	)
	for range parked {
		id := uuid.NewString()
		c := sendCommand(id, herald.ChannelSMS)
		cmds = append(cmds, c)
		notified = append(notified, id)
		all = append(all, c.messageID)
	}
	park(t, amqpURL, cmds...)
	waitDepth(t, amqpURL, parked)
	// The removal names the head of the queue, which the first walk holds from its start, and
	// every tenth message after it.
	var keys []handlers.ParkedKey
	removedIDs := map[string]bool{}
	for i := 0; i < parked; i += 10 {
		keys = append(keys, handlers.ParkedKey{NotificationID: notified[i], MessageID: cmds[i].messageID})
		removedIDs[cmds[i].messageID] = true
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := [3]*waitLog{{}, {}, {}}
	first := router.NewPoisonQueue(amqpURL, slog.New(logs[0]))
	second := router.NewPoisonQueue(amqpURL, slog.New(logs[1]))
	remover := router.NewPoisonQueue(amqpURL, slog.New(logs[2]))

	var (
		wg                     sync.WaitGroup
		firstSeen, secondSeen  []string
		firstErr, secondErr    error
		removeErr              error
		removed                map[string]int
		secondDone, removeDone = make(chan struct{}), make(chan struct{})
		holding                = make(chan struct{})
	)
	// The first walk takes the head of the queue and then holds it until the others have asked
	// to look: each is either waiting for the lock or (without one) done.
	wg.Add(1)
	go func() {
		defer wg.Done()
		firstErr = first.Walk(ctx, func(m handlers.ParkedMessage) bool {
			firstSeen = append(firstSeen, m.MessageID)
			if len(firstSeen) == 1 {
				close(holding)
				return asked(ctx, logs[1], secondDone) && asked(ctx, logs[2], removeDone)
			}
			return true
		})
	}()
	<-holding
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(secondDone)
		secondErr = second.Walk(ctx, func(m handlers.ParkedMessage) bool {
			secondSeen = append(secondSeen, m.MessageID)
			return true
		})
	}()
	go func() {
		defer wg.Done()
		defer close(removeDone)
		removed, removeErr = remover.Remove(ctx, keys)
	}()
	wg.Wait()
	if firstErr != nil || secondErr != nil || removeErr != nil {
		t.Fatalf("first walk: %v; second walk: %v; remove: %v", firstErr, secondErr, removeErr)
	}

	// The first walk saw everything; the second either everything or what the removal left.
	left := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return removedIDs[id] })
	checkSeen(t, "first walk", firstSeen, all)
	if len(secondSeen) == len(all) {
		checkSeen(t, "second walk", secondSeen, all)
	} else {
		checkSeen(t, "second walk", secondSeen, left)
	}
	total := 0
	for _, n := range removed {
		total += n
	}
	if total != len(keys) || len(removed) != len(keys) {
		t.Errorf("the removal removed %d messages of %d notifications, want one of each of the %d named", total, len(removed), len(keys))
	}
	for i, w := range logs[1:] {
		if n := w.count(); n != 1 {
			t.Errorf("look %d logged %d times that it waits, want once", i+2, n)
		}
	}
	if n := logs[0].count(); n != 0 {
		t.Errorf("the first look logged %d times that it waits, want never", n)
	}

	// No stale copy: exactly what was not removed is parked, and the lock queue is gone.
	waitDepth(t, amqpURL, len(left))
	msgs, err := router.NewPoisonQueue(amqpURL, nil).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for _, m := range msgs {
		after = append(after, m.MessageID)
	}
	checkSeen(t, "after the removal", after, left)
	assertNoLockQueue(t, amqpURL)
}

// asked waits until a look has either logged that it waits for the lock or ended, and reports
// whether it did before ctx ended.
func asked(ctx context.Context, log *waitLog, done <-chan struct{}) bool {
	for log.count() == 0 {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// checkSeen fails the test unless got holds each of want exactly once, and nothing else.
func checkSeen(t *testing.T, what string, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var missing, twice int
	for _, id := range want {
		switch count[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
		delete(count, id)
	}
	if missing > 0 || twice > 0 || len(count) > 0 {
		t.Errorf("%s: saw %d messages of the %d expected: %d missing, %d more than once, %d unexpected",
			what, len(got), len(want), missing, twice, len(count))
	}
}

// assertNoLockQueue fails the test if the lock queue is still declared.
func assertNoLockQueue(t *testing.T, amqpURL string) {
	t.Helper()
	ch := heraldtest.AMQPChannel(t, amqpURL)
	if _, err := ch.QueueDeclarePassive(router.QueuePoisonLock, false, true, true, false, nil); err == nil {
		t.Errorf("%s is still declared after every look ended", router.QueuePoisonLock)
	}
}

// A holder whose connection dies without releasing the lock — its socket cut, as when its
// process is killed — frees it for the next look, which was waiting.
func TestPoisonLockDiesWithItsHolder(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	id := uuid.NewString()
	park(t, amqpURL, sendCommand(id, herald.ChannelSMS))
	waitDepth(t, amqpURL, 1)
	q := router.NewPoisonQueue(amqpURL, nil)

	var sock net.Conn
	conn, err := amqp091.DialConfig(amqpURL, amqp091.Config{Dial: func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		sock = c
		return c, err
	}})
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	defer conn.Close()
	if _, err := router.LockPoison(context.Background(), q, conn); err != nil {
		t.Fatalf("take the lock: %v", err)
	}

	// Held: a look waits until its context ends. The context also covers the look's dial, which
	// must not be what ends it.
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = q.List(short)
	cancel()
	if !errors.Is(err, router.ErrPoisonQueueBusy) || herald.ErrorCode(err) != herald.EUNAVAILABLE {
		t.Fatalf("List while another connection holds the lock: %v, want %v (%s)", err, router.ErrPoisonQueueBusy, herald.EUNAVAILABLE)
	}

	// A look that waits when the holder dies gets the lock, well within its deadline.
	type result struct {
		msgs []handlers.ParkedMessage
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	bounded, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs := &waitLog{}
	waiter := router.NewPoisonQueue(amqpURL, slog.New(logs))
	go func() {
		start := time.Now()
		msgs, err := waiter.List(bounded)
		done <- result{msgs, err, time.Since(start)}
	}()
	heraldtest.Eventually(t, 5*time.Second, "the next look to wait for the lock", func() (bool, error) {
		return logs.count() == 1, nil
	})
	if err := sock.Close(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r := <-done
	if r.err != nil {
		t.Fatalf("List after the holder's connection died: %v (after %s)", r.err, r.took)
	}
	if len(r.msgs) != 1 || r.msgs[0].NotificationID != id {
		t.Errorf("List after the holder died: %d messages, want the one parked", len(r.msgs))
	}
	t.Logf("the lock was free %s after the holder's socket was cut", time.Since(cut))
	assertNoLockQueue(t, amqpURL)
	waitDepth(t, amqpURL, 1)
}

// The lock goes with every way a look ends: the next look gets it at once, and no lock queue
// is left behind.
func TestPoisonLockReleasedOnEveryPath(t *testing.T) {
	amqpURL := heraldtest.NewVHost(t)
	declarePoison(t, amqpURL)
	var cmds []parkedCommand
	for range 20 {
		cmds = append(cmds, sendCommand(uuid.NewString(), herald.ChannelSMS))
	}
	park(t, amqpURL, cmds...)
	waitDepth(t, amqpURL, len(cmds))
	q := router.NewPoisonQueue(amqpURL, nil)

	for _, tc := range []struct {
		name string
		look func(t *testing.T)
		// mayWait: the connection is closed under the look, and the broker drops the lock
		// with it a moment later.
		mayWait bool
	}{
		{"walked to the end", func(t *testing.T) {
			if err := q.Walk(context.Background(), func(handlers.ParkedMessage) bool { return true }); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"stopped by its function", func(t *testing.T) {
			if err := q.Walk(context.Background(), func(handlers.ParkedMessage) bool { return false }); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removal", func(t *testing.T) {
			if _, err := q.Remove(context.Background(), []handlers.ParkedKey{{NotificationID: uuid.NewString()}}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"panic in its function", func(t *testing.T) {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the function's panic", r)
				}
			}()
			_ = q.Walk(context.Background(), func(handlers.ParkedMessage) bool { panic("boom") })
		}, false},
		{"context cancelled midway", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 0
			err := q.Walk(ctx, func(handlers.ParkedMessage) bool {
				if n++; n == 5 {
					cancel()
				}
				return true
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Walk cancelled midway: %v, want %v", err, context.Canceled)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.look(t)
			// The next look gets the lock at once, or (mayWait) within its deadline: the time the
			// broker takes to drop the closed connection's exclusive queue.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			logs := &waitLog{}
			msgs, err := router.NewPoisonQueue(amqpURL, slog.New(logs)).List(ctx)
			if err != nil {
				t.Fatalf("the next look: %v", err)
			}
			if len(msgs) != len(cmds) {
				t.Errorf("the next look saw %d messages, want the %d parked", len(msgs), len(cmds))
			}
			if n := logs.count(); n != 0 && !tc.mayWait {
				t.Errorf("the next look waited for the lock (%d records)", n)
			}
			assertNoLockQueue(t, amqpURL)
		})
	}
}
