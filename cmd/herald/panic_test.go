package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// A panic in a component becomes the component's error, whose text is masked like any other,
// rather than a crash printed by the runtime as it is.
func TestComponentPanicIsMasked(t *testing.T) {
	commandSettings(t)
	const token = "Pl4nted-panic-token"
	t.Setenv("HERALD_SMS_AUTH_TOKEN", token)
	root := rootCommand()
	worker, _, err := root.Find([]string{"worker"})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	logger := slog.New(flagSecrets(worker.Flags()).Handler(slog.NewTextHandler(&log, nil)))
	err = runComponents(t.Context(), logger, 5*time.Second, component{name: "gateway", run: func(context.Context) error {
		panic("refused token " + token)
	}})
	if err == nil || !strings.Contains(err.Error(), "gateway: panic: refused token") {
		t.Fatalf("runComponents = %v, want the component's panic", err)
	}
	if !strings.Contains(log.String(), "panic: refused token xxxxx") {
		t.Errorf("the log does not tell the panic, masked:\n%s", log.String())
	}
	if strings.Contains(log.String(), token) {
		t.Errorf("the log shows the token:\n%s", log.String())
	}
	if msg := commandSecrets(root).Error(err).Error(); strings.Contains(msg, token) {
		t.Errorf("the error main prints shows the token: %s", msg)
	}

	// A panic in the command itself becomes execute's error.
	boom := &cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error { panic("token " + token) }}
	boom.SetArgs([]string{})
	err = execute(t.Context(), boom)
	if err == nil || !strings.HasPrefix(err.Error(), "panic: token") {
		t.Errorf("execute = %v, want the panic as an error", err)
	}
}
