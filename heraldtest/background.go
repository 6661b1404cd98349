package heraldtest

import (
	"context"
	"testing"
)

// RunInBackground runs run in a goroutine until the test ends: then it cancels run's context,
// waits for it to return, and fails the test if it returned an error. It is how a test keeps a
// relay, a projector or a topology running beside it and still sees how it stopped.
func RunInBackground(t testing.TB, name string, run func(context.Context) error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}
