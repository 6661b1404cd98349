package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// setting is a flag with its environment variable.
type setting struct {
	env, flag, def string
}

// commandSettings collects every HERALD_* setting of every command, with the flag's default
// when no variable is set.
func commandSettings(t *testing.T) map[string]setting {
	t.Helper()
	clearHeraldEnv(t)
	envRef := regexp.MustCompile(`\[\$(HERALD_[A-Z0-9_]+)\]`)
	out := map[string]setting{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			m := envRef.FindStringSubmatch(f.Usage)
			if m == nil {
				if _, arg := f.Annotations[argumentAnnotation]; f.Name != "help" && !arg {
					t.Errorf("herald %s --%s has no environment variable", c.Name(), f.Name)
				}
				return
			}
			s := setting{env: m[1], flag: f.Name, def: strings.Trim(f.DefValue, "[]")}
			if prev, ok := out[s.env]; ok && prev != s {
				t.Errorf("%s means --%s=%q in one command and --%s=%q in another", s.env, prev.flag, prev.def, s.flag, s.def)
			}
			out[s.env] = s
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
	return out
}

// The README's configuration table lists every setting, with the default the binary really has.
func TestReadmeListsEverySetting(t *testing.T) {
	settings := commandSettings(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| ((?:`HERALD_[A-Z0-9_]+`(?:, )?)+) \\| ([^|]*) \\|")
	name := regexp.MustCompile("`(HERALD_[A-Z0-9_]+)`")
	documented := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		names := name.FindAllStringSubmatch(m[1], -1)
		def := strings.Trim(strings.TrimSpace(m[2]), "`")
		for _, n := range names {
			env := n[1]
			documented[env] = true
			s, ok := settings[env]
			if !ok {
				t.Errorf("README documents %s, which no command reads", env)
				continue
			}
			if strings.HasPrefix(def, "(") {
				// "(none)" and described defaults: the flag must have no value of its own.
				if s.def != "" && s.def != "false" && s.def != "0" {
					t.Errorf("README says %s defaults to %s; --%s defaults to %q", env, def, s.flag, s.def)
				}
				continue
			}
			if def != s.def {
				t.Errorf("README says %s defaults to %q; --%s defaults to %q", env, def, s.flag, s.def)
			}
		}
	}
	for env, s := range settings {
		if !documented[env] {
			t.Errorf("README's configuration table does not list %s (--%s)", env, s.flag)
		}
	}
}

func TestMalformedEnvironmentIsRefused(t *testing.T) {
	commandSettings(t) // clears HERALD_* for the test
	tests := []struct {
		env, value, want string
	}{
		{"HERALD_WORKER_CONCURRENCY", "many", "HERALD_WORKER_CONCURRENCY"},
		{"HERALD_DELIVERY_TIMEOUT", "30", "not a duration"},
		{"HERALD_MIGRATE", "yes please", "not true or false"},
		{"HERALD_RETRY_JITTER", "lots", "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			root := rootCommand()
			root.SetArgs([]string{"worker"})
			root.SetOut(os.Stderr)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s=%q: error %v, want one mentioning %q", tt.env, tt.value, err, tt.want)
			}
		})
	}
}

func TestInvalidSettingsAreRefusedBeforeConnecting(t *testing.T) {
	commandSettings(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--channels", "fax"}, "--channels"},
		{[]string{"worker", "--concurrency", "0"}, "--concurrency"},
		{[]string{"worker", "--retry-jitter", "1.5"}, "--retry-jitter"},
		{[]string{"all", "--amqp-queue-type", "stream"}, "queue type"},
		{[]string{"serve", "--amqp-url", "http://nope"}, "AMQP URL"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--trusted-proxies", "10.0.0.0/8,proxy.internal"}, "--trusted-proxies"},
		{[]string{"serve", "--address-rate-limit", "-1"}, "--address-rate-limit"},
		{[]string{"serve", "--database-max-conns", "0"}, "--database-max-conns"},
		{[]string{"projections", "status", "--database-max-conns", "-1"}, "--database-max-conns"},
		{[]string{"serve", "--public-url", "herald.example.com"}, "--public-url"},
		{[]string{"worker", "--public-url", "ftp://herald.example.com"}, "--public-url"},
		{[]string{"all", "--public-url", "https://herald.example.com/?from=gateway"}, "--public-url"},
		{[]string{"bounces", "serve"}, "--bounce-domain: required"},
		{[]string{"bounces", "serve", "--bounce-domain", "bounces@example.com"}, "--bounce-domain"},
		{[]string{"bounces", "serve", "--bounce-domain", "b.example.com", "--bounce-addr", "2525"}, "--bounce-addr"},
		{[]string{"bounces", "serve", "--bounce-domain", "b.example.com", "--bounce-max-size", "10"}, "--bounce-max-size"},
		{[]string{"bounces", "serve", "--bounce-domain", "b.example.com", "--bounce-retention", "0s"}, "--bounce-retention"},
		{[]string{"worker", "--bounce-domain", "not a domain"}, "--bounce-domain"},
		{[]string{"bounces", "list", "--outcome", "bounced"}, "--outcome: unknown outcome"},
		{[]string{"bounces", "list", "--limit", "0"}, "--limit"},
		{[]string{"bounces", "show", "x"}, "report id"},
		{[]string{"projector", "--checkpoint-previous-keys", "not-a-key"}, "--checkpoint-previous-keys"},
		{[]string{"serve", "extra"}, "unknown command"},
		{[]string{"migrate", "sideways"}, "invalid argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			root := rootCommand()
			root.SetArgs(tt.args)
			// Unreachable services: a check that connected first would hang or fail differently.
			t.Setenv("HERALD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
