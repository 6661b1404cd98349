package bench

import (
	"context"
	"testing"
	"time"
)

func TestWaitQuiet(t *testing.T) {
	ctx := context.Background()
	// Any machine is less than 101% busy: quiet after the first second.
	if waited, quiet := waitQuiet(ctx, 1.01, 10*time.Second); !quiet || waited > 5*time.Second {
		t.Errorf("waitQuiet(1.01) = %s, %v; want quiet after about a second", waited, quiet)
	}
	// No machine is less than 0% busy: never quiet, and it gives up at the limit.
	waited, quiet := waitQuiet(ctx, 0, 1500*time.Millisecond)
	if quiet || waited < 1500*time.Millisecond {
		t.Errorf("waitQuiet(0) = %s, %v; want not quiet after the 1.5s limit", waited, quiet)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, quiet := waitQuiet(cancelled, 1.01, time.Minute); quiet {
		t.Error("waitQuiet on a cancelled context says quiet")
	}
}
