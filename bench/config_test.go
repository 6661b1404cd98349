package bench_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/bench"
)

func TestValidateNamesTheBadFlag(t *testing.T) {
	tests := []struct {
		name   string
		change func(*bench.Config)
		want   string // "" for valid
	}{
		{"defaults", func(*bench.Config) {}, ""},
		{"separate processes", func(c *bench.Config) { c.Spawn, c.Workers = []string{"serve", "worker", "projector"}, 3 }, ""},
		{"all and extra workers", func(c *bench.Config) { c.Spawn, c.Workers = []string{"all", "worker"}, 2 }, ""},
		{"url mode", func(c *bench.Config) { c.URL, c.APIKey = "http://127.0.0.1:8080", "hrld_x" }, ""},
		{"no notifications", func(c *bench.Config) { c.N = 0 }, "-n 0"},
		{"too many", func(c *bench.Config) { c.N = 2_000_000_000 }, "-n 2000000000"},
		{"ratio", func(c *bench.Config) { c.SMSRatio = 1.5 }, "--sms-ratio"},
		{"rate", func(c *bench.Config) { c.Rate = -1 }, "--rate"},
		{"rate NaN", func(c *bench.Config) { c.Rate = math.NaN() }, "--rate"},
		{"rate infinite", func(c *bench.Config) { c.Rate = math.Inf(1) }, "--rate"},
		{"rate too small", func(c *bench.Config) { c.Rate = 1e-300 }, "--rate"},
		{"ratio NaN", func(c *bench.Config) { c.SMSRatio = math.NaN() }, "--sms-ratio"},
		{"poll rate NaN", func(c *bench.Config) { c.PollRate = math.NaN() }, "--poll-rate"},
		{"poll rate too large", func(c *bench.Config) { c.PollRate = 1e10 }, "--poll-rate"},
		{"key without url", func(c *bench.Config) { c.APIKey = "hrld_x" }, "--api-key goes with --url"},
		{"in flight", func(c *bench.Config) { c.MaxInFlight = 0 }, "--max-in-flight"},
		{"concurrency", func(c *bench.Config) { c.Concurrency = 0 }, "--concurrency"},
		{"sample", func(c *bench.Config) { c.Sample = -1 }, "--sample"},
		{"poll rate", func(c *bench.Config) { c.PollRate = 0 }, "--poll-rate"},
		{"drain", func(c *bench.Config) { c.Drain = 0 }, "--drain"},
		{"ceiling duration", func(c *bench.Config) { c.CeilingDuration = time.Millisecond }, "--ceiling-duration"},
		{"no ceiling, any duration", func(c *bench.Config) { c.Ceiling, c.CeilingDuration = false, 0 }, ""},
		{"unknown role", func(c *bench.Config) { c.Spawn = []string{"api"} }, `--spawn "api"`},
		{"no projector", func(c *bench.Config) { c.Spawn = []string{"serve", "worker"} }, "nothing would run projector"},
		{"twice", func(c *bench.Config) { c.Spawn = []string{"worker", "worker", "serve", "projector"} }, "use --workers"},
		{"two APIs", func(c *bench.Config) { c.Spawn = []string{"all", "serve"} }, "one API"},
		{"workers without worker", func(c *bench.Config) { c.Workers = 2 }, "--workers 2"},
		{"env", func(c *bench.Config) { c.Env = []string{"HERALD_X"} }, "KEY=VALUE"},
		{"database url", func(c *bench.Config) { c.AdminDatabaseURL = "mysql://x" }, "--admin-database-url"},
		{"rabbit api", func(c *bench.Config) { c.RabbitMQAPI = "amqp://x" }, "--rabbitmq-api"},
		{"amqp url", func(c *bench.Config) { c.AMQPURL = "http://x" }, "--amqp-url"},
		{"url without key", func(c *bench.Config) { c.URL = "http://127.0.0.1:8080" }, "--api-key"},
		{"bad url", func(c *bench.Config) { c.URL, c.APIKey = "127.0.0.1:8080", "k" }, "--url"},
		{"webhooks", func(c *bench.Config) { c.Webhooks, c.WebhookFailing = 2, true }, ""},
		{"failing webhook alone", func(c *bench.Config) { c.WebhookFailing = true }, ""},
		{"negative webhooks", func(c *bench.Config) { c.Webhooks = -1 }, "--webhooks -1"},
		{"too many webhooks", func(c *bench.Config) { c.Webhooks = 1000 }, "--webhooks 1000"},
		{"webhooks with url", func(c *bench.Config) { c.URL, c.APIKey, c.Webhooks = "http://127.0.0.1:8080", "k", 1 }, "not --url"},
		{"stored templates with url", func(c *bench.Config) { c.URL, c.APIKey, c.Template = "http://127.0.0.1:8080", "k", true }, "--template needs"},
		{"ledger sealed", func(c *bench.Config) { c.Ledger = bench.LedgerSealed }, ""},
		{"ledger off", func(c *bench.Config) { c.Ledger = bench.LedgerOff }, ""},
		{"key through env", func(c *bench.Config) { c.Env = []string{"HERALD_CHECKPOINT_KEY=/k"} }, "--env HERALD_CHECKPOINT_KEY: the run's checkpoint key and file are --ledger sealed's"},
		{"checkpoint file through env", func(c *bench.Config) { c.Env = []string{"HERALD_CHECKPOINT_FILE=/f"} }, "--env HERALD_CHECKPOINT_FILE"},
		{"unknown ledger", func(c *bench.Config) { c.Ledger = "merkle" }, `--ledger "merkle": want one of chained, sealed, off`},
		{"sealed with url", func(c *bench.Config) { c.URL, c.APIKey, c.Ledger = "http://127.0.0.1:8080", "k", bench.LedgerSealed }, "--ledger sealed needs"},
		{"ledger off with url", func(c *bench.Config) { c.URL, c.APIKey, c.Ledger = "http://127.0.0.1:8080", "k", bench.LedgerOff }, "--ledger off needs"},
		{"webhooks without all", func(c *bench.Config) {
			c.Spawn, c.WebhookFailing = []string{"serve", "worker", "projector"}, true
		}, "need all in --spawn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := bench.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
