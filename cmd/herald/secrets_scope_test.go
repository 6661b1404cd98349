package main

import (
	"strings"
	"testing"
)

// A URL setting's secret is its password, not the URL: its host, port, user and database are
// everyday words of the logs and must not be masked in them.
func TestURLSettingsMaskOnlyTheirPassword(t *testing.T) {
	commandSettings(t) // clears HERALD_*
	t.Setenv("HERALD_DATABASE_URL", "postgres://herald_app:app-Pa55word@127.0.0.1:5432/herald?sslmode=disable")
	t.Setenv("HERALD_MIGRATE_DATABASE_URL", "postgres://herald:owner-Pa55word@127.0.0.1:5432/herald?sslmode=disable")
	t.Setenv("HERALD_AMQP_URL", "amqp://herald:mq-Pa55word@127.0.0.1:5672/")
	secrets := commandSecrets(rootCommand())
	const line = "listening addr=127.0.0.1:8080 role=herald_app database=herald port=5432"
	if got := secrets.String(line); got != line {
		t.Errorf("masking changed a line without a secret:\n got %s\nwant %s", got, line)
	}
	for _, pw := range []string{"app-Pa55word", "owner-Pa55word", "mq-Pa55word"} {
		if got := secrets.String("password " + pw); strings.Contains(got, pw) {
			t.Errorf("masking left %s in %q", pw, got)
		}
	}
}
