package harness

import (
	"context"
	"fmt"
	"os/exec"
)

// Build compiles ./cmd/herald of the module in moduleDir into out, so that a suite runs the
// binary a user runs, built from the tree under test.
func Build(ctx context.Context, moduleDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/herald")
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/herald: %w\n%s", err, b)
	}
	return nil
}
