package heraldtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/herald-notify/herald/harness"
)

// RunWithHerald is a TestMain for suites that run the herald binary: it builds ./cmd/herald of
// the module in moduleDir (relative to the package's directory, where tests run) into a
// temporary directory, stores its path in bin, runs the tests and removes the binary. It returns
// the exit code for os.Exit.
func RunWithHerald(m *testing.M, moduleDir string, bin *string) int {
	dir, err := os.MkdirTemp("", "herald-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "herald")
	if err := harness.Build(context.Background(), moduleDir, *bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// StartHerald starts the herald process spec describes and waits until it is ready, failing the
// test with the end of its output if it is not. Stopping it is the caller's: how a process must
// exit is part of what a test checks.
func StartHerald(t testing.TB, spec harness.Spec) *harness.Process {
	t.Helper()
	if spec.LogDir == "" {
		spec.LogDir = t.TempDir()
	}
	p, err := harness.Start(context.Background(), spec)
	if err != nil {
		if p != nil {
			t.Logf("herald %s output:\n%s", spec.Command, p.Tail(60))
		}
		t.Fatalf("herald %s did not start: %v", spec.Command, err)
	}
	return p
}
