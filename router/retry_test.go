package router_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/router"
)

// The delays between tries are the ones configured, although watermill's Retry doubles the
// growth of its backoff whenever ShouldRetry is set.
func TestRetryDelaysAsConfigured(t *testing.T) {
	cfg := router.RetryConfig{MaxRetries: 3, InitialInterval: 60 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2}
	var calls []time.Time
	h := router.RetryMiddleware(cfg, watermill.NopLogger{})(func(*message.Message) ([]*message.Message, error) {
		calls = append(calls, time.Now())
		return nil, errors.New("transient")
	})
	msg := message.NewMessage("1", nil)
	msg.SetContext(context.Background())
	if _, err := h(msg); err == nil {
		t.Fatal("handler error was swallowed")
	}
	if len(calls) != 4 {
		t.Fatalf("%d tries, want 1 + MaxRetries = 4", len(calls))
	}
	for i, want := range []time.Duration{60 * time.Millisecond, 120 * time.Millisecond, 240 * time.Millisecond} {
		got := calls[i+1].Sub(calls[i])
		// Sleeping never ends early; a busy machine may make it end late, never by a factor.
		if got < want || got > want+want/2+50*time.Millisecond {
			t.Errorf("delay before try %d = %s, want %s", i+2, got, want)
		}
	}
}

func TestRetryStopsOnFinalErrors(t *testing.T) {
	cfg := router.RetryConfig{MaxRetries: 5, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Multiplier: 2}
	tries := 0
	h := router.RetryMiddleware(cfg, watermill.NopLogger{})(func(*message.Message) ([]*message.Message, error) {
		tries++
		return nil, fmt.Errorf("deliver: %w: 550 no such user", handlers.ErrFinal)
	})
	msg := message.NewMessage("1", nil)
	msg.SetContext(context.Background())
	_, err := h(msg)
	if !handlers.Final(err) {
		t.Errorf("error %v lost its finality", err)
	}
	if tries != 1 {
		t.Errorf("%d tries of a final error, want 1", tries)
	}
}

// A command whose wait for the rate limit lasted the longest wait is not tried again in this
// process (each try could wait as long again, past the broker's consumer timeout), nor made final
// (it would be parked): it goes back to its queue.
func TestRetryStopsOnRequeueErrors(t *testing.T) {
	cfg := router.RetryConfig{MaxRetries: 5, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Multiplier: 2}
	tries := 0
	h := router.RetryMiddleware(cfg, watermill.NopLogger{})(func(*message.Message) ([]*message.Message, error) {
		tries++
		return nil, fmt.Errorf("deliver: %w: waited 5m for the rate limit", handlers.ErrRequeue)
	})
	msg := message.NewMessage("1", nil)
	msg.SetContext(context.Background())
	_, err := h(msg)
	if err == nil || handlers.Final(err) || !handlers.Requeue(err) {
		t.Errorf("error %v: want a requeue error, not final", err)
	}
	if tries != 1 {
		t.Errorf("%d tries of a requeue error, want 1", tries)
	}
}
