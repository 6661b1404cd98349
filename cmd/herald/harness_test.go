package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// This file is how every test here runs the herald command line: in this process, on a fresh
// root command, without the HERALD_* variables of whoever runs the tests.

// clearHeraldEnv keeps the HERALD_* variables of whoever runs the tests out of them.
func clearHeraldEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "HERALD_") {
			t.Setenv(name, "")
		}
	}
}

// runHerald runs herald with args in this process and returns what it wrote to stdout.
func runHerald(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHeraldContext(t, t.Context(), args...)
}

// runHeraldContext is runHerald under ctx, for a test that gives up on the command.
func runHeraldContext(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	root := rootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return stdout.String(), err
}

// mustRunHerald runs herald and fails the test if it fails.
func mustRunHerald(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runHerald(t, args...)
	if err != nil {
		t.Fatalf("herald %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
