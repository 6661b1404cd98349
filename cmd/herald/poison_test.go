package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"
)

// runPoison runs `herald args...` against services that are not there, so a command that
// checked its arguments only after connecting would fail differently, or hang.
func runPoison(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	return runPoisonContext(t, context.Background(), args...)
}

// runPoisonContext is runPoison under ctx.
func runPoisonContext(t *testing.T, ctx context.Context, args ...string) (stdout string, err error) {
	t.Helper()
	commandSettings(t) // clears HERALD_* for the test
	t.Setenv("HERALD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	t.Setenv("HERALD_AMQP_URL", "amqp://nobody:none@127.0.0.1:1/")
	return runHeraldContext(t, ctx, args...)
}

func TestPoisonArgumentsAreCheckedBeforeConnecting(t *testing.T) {
	id := uuid.NewString()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"poison", "requeue"}, "name the notifications"},
		{[]string{"poison", "discard", "--reason", "r"}, "name the notifications"},
		{[]string{"poison", "requeue", "--all", id}, "not both"},
		{[]string{"poison", "requeue", "not-a-uuid", id}, `not a notification id (a UUID): "not-a-uuid"`},
		{[]string{"poison", "requeue", "--all", "--type", "fax"}, `--type: unknown channel "fax"`},
		{[]string{"poison", "requeue", "--all", "--channel", "fax"}, `--channel: unknown channel "fax"`},
		{[]string{"poison", "requeue", id, "--type", "sms"}, "--type only narrows --all"},
		{[]string{"poison", "requeue", id, "--channel", "sms"}, "--type only narrows --all"},
		{[]string{"poison", "requeue", "--all", "--type", "sms", "--channel", "email"}, "--channel is email, but --type is sms"},
		{[]string{"poison", "discard", id}, "discard needs --reason"},
		{[]string{"poison", "discard", "--all", "--reason", "  "}, "discard needs --reason"},
		{[]string{"poison", "list", "-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table or json`},
		{[]string{"poison", "list", "--type", "pigeon"}, `--type: unknown channel "pigeon"`},
		{[]string{"poison", "list", "--channel", "pigeon"}, `--channel: unknown channel "pigeon"`},
		{[]string{"poison", "list", "extra"}, "unknown command"},
		{[]string{"poison", "show"}, "accepts 1 arg"},
		{[]string{"poison", "show", id, id}, "accepts 1 arg"},
		{[]string{"poison", "show", "nope"}, `"nope" is not a notification id`},
		{[]string{"poison", "requeue", id, "--amqp-url", "http://nope"}, "--amqp-url"},
		{[]string{"poison", "requeue", id, "--log-level", "loud"}, "--log-level"},
		{[]string{"poison", "requeue", "--nope"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := runPoison(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// Once the arguments are right, a poison command needs PostgreSQL: it says so when it is not
// there, rather than pretending all is well.
func TestPoisonCommandsNeedTheDatabase(t *testing.T) {
	// It would wait for PostgreSQL up to poisonConnectTimeout; the test needs only the beginning.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := runPoisonContext(t, ctx, "poison", "requeue", uuid.NewString(), "--actor", "ops")
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("requeue without PostgreSQL: %v, want an error about PostgreSQL", err)
	}
}

func TestPoisonHelpSaysWhatItDoes(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"poison", "--help"}, []string{"list", "show", "requeue", "discard", "--actor", "--reason"}},
		{[]string{"poison", "requeue", "--help"}, []string{"--all", "--type", "--actor", "--reason", "-o, --output", "$HERALD_DATABASE_URL", "$HERALD_AMQP_URL", "new round"}},
		{[]string{"poison", "discard", "--help"}, []string{"--reason", "(required)", "stay", "failed"}},
		{[]string{"poison", "list", "--help"}, []string{"--type", "-o, --output", "stale"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := runPoison(t, tt.args...)
			if err != nil {
				t.Fatalf("%v: %v", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help does not mention %q:\n%s", w, out)
				}
			}
		})
	}
	// The command is no longer a hidden placeholder.
	for _, c := range rootCommand().Commands() {
		if c.Name() == "poison" && c.Hidden {
			t.Errorf("herald poison is hidden")
		}
	}
}

// Arguments of one invocation have no environment variable: one left set would aim every later
// invocation (HERALD_…_ALL=true discarding everything, say).
func TestPoisonArgumentsHaveNoEnvironmentVariable(t *testing.T) {
	for _, sub := range []string{"list", "show", "requeue", "discard"} {
		cmd, _, err := rootCommand().Find([]string{"poison", sub})
		if err != nil {
			t.Fatal(err)
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			_, arg := f.Annotations[argumentAnnotation]
			hasEnv := strings.Contains(f.Usage, "[$HERALD_")
			switch f.Name {
			case "all", "type", "channel", "actor", "reason", "dry-run", "output", "limit", "cursor":
				if !arg || hasEnv {
					t.Errorf("poison %s --%s: argument %t, environment variable %t; want an argument without one", sub, f.Name, arg, hasEnv)
				}
			case "help":
			default:
				if arg || !hasEnv {
					t.Errorf("poison %s --%s: argument %t, environment variable %t; want a setting with one", sub, f.Name, arg, hasEnv)
				}
			}
		})
	}
}

func TestPoisonActorDefaultsToTheOSUser(t *testing.T) {
	got, err := poisonActor("")
	if err != nil || got == "" {
		t.Fatalf("poisonActor(\"\") = %q, %v; want the OS user", got, err)
	}
	if got, err := poisonActor("ops"); got != "ops" || err != nil {
		t.Errorf("poisonActor(\"ops\") = %q, %v; want ops", got, err)
	}
}

// The poison commands take HERALD_AMQP_URL in every form the services take (a cluster's nodes as
// several URLs or several hosts), and refuse what the services refuse.
func TestPoisonTakesAClusterURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		refused bool
	}{
		{"amqp://nobody:none@127.0.0.1:1/", false},
		{"amqp://nobody:none@127.0.0.1:1,127.0.0.1:2/", false},
		{"amqp://nobody:none@127.0.0.1:1/,amqp://nobody:none@127.0.0.1:2/", false},
		{"AMQPS://nobody:none@127.0.0.1:1/", false},
		{"amqp://nobody:none@127.0.0.1:1/,amqp://nobody:other@127.0.0.1:2/", true},
		{"http://nope", true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := runPoison(t, "poison", "list", "--amqp-url", tc.url)
			if err == nil {
				t.Fatal("poison list succeeded without services")
			}
			if refused := strings.Contains(err.Error(), "--amqp-url"); refused != tc.refused {
				t.Errorf("refused the URL: %v, want %v (%v)", refused, tc.refused, err)
			}
		})
	}
}
