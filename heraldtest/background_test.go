package heraldtest_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/herald-notify/herald/heraldtest"
)

func TestRunInBackgroundStopsItWhenTheTestEnds(t *testing.T) {
	var started, stopped atomic.Bool
	t.Run("user", func(t *testing.T) {
		heraldtest.RunInBackground(t, "worker", func(ctx context.Context) error {
			started.Store(true)
			<-ctx.Done()
			stopped.Store(true)
			return nil
		})
	})
	if !started.Load() || !stopped.Load() {
		t.Errorf("started %v, stopped %v: want it started and stopped by the end of the test", started.Load(), stopped.Load())
	}
}
