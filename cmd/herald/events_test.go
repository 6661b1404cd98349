package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// eventsLog is a test database holding two notifications: a, an email that failed once and was
// sent on its second attempt, and b, an SMS still pending, whose events interleave with a's.
type eventsLog struct {
	url  string
	a, b string
	// all is every event as recorded, in log order: a1 b1 a2 a3 a4 a5.
	all []events.Recorded
}

func newEventsLog(t *testing.T) *eventsLog {
	t.Helper()
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	log := events.NewLog(db.Pool)
	l := &eventsLog{url: db.URL, a: uuid.NewString(), b: uuid.NewString()}
	steps := []struct {
		stream string
		event  events.Event
		actor  string
	}{
		{l.a, &events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Content: "Hi",
			Body: "Hi", RenderedSubject: "Welcome"}, "api"},
		{l.b, &events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "Hi", Body: "Hi"}, "api"},
		{l.a, &events.NotificationProcessing{Attempt: 1, Worker: "host/1"}, "worker:host/1"},
		{l.a, &events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"}, "worker:host/1"},
		{l.a, &events.NotificationProcessing{Attempt: 2, Worker: "host/2"}, "worker:host/2"},
		{l.a, &events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"}, "worker:host/2"},
	}
	versions := map[string]int64{}
	for _, s := range steps {
		recs, err := log.Append(t.Context(), s.stream, versions[s.stream], events.Metadata{Actor: s.actor}, s.event)
		if err != nil {
			t.Fatal(err)
		}
		versions[s.stream]++
		if n := len(l.all); n > 0 && !recs[0].Time.After(l.all[n-1].Time) {
			t.Fatalf("event %d recorded at %s, not after the one before at %s", n, recs[0].Time, l.all[n-1].Time)
		}
		l.all = append(l.all, recs...)
	}
	return l
}

// positions are the global positions of the events keep selects, in log order.
func (l *eventsLog) positions(keep func(events.Recorded) bool) []int64 {
	out := []int64{}
	for _, r := range l.all {
		if keep(r) {
			out = append(out, r.Position)
		}
	}
	return out
}

// decodeJSONL decodes each line of out as a T, refusing fields T does not have.
func decodeJSONL[T any](t *testing.T, out string) []T {
	t.Helper()
	list := []T{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var v T
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		list = append(list, v)
	}
	return list
}

// squeezeSpaces turns each run of spaces in s into one, so tables compare whatever their widths.
func squeezeSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		lines[i] = strings.Join(strings.Fields(line), " ")
	}
	return strings.Join(lines, "\n")
}

// What one invocation reads is said by its arguments, which have no environment variable: one
// left set would silently narrow every later listing. Only the settings (database, logs) do.
func TestEventsArgumentsHaveNoEnvironmentVariable(t *testing.T) {
	clearHeraldEnv(t)
	settings := []string{"database-url", "database-max-conns", "log-level", "log-format"}
	for sub, args := range map[string][]string{
		"list":   {"stream", "type", "from-position", "to-position", "since", "until", "limit", "output"},
		"replay": {"as-of", "stream", "output"},
	} {
		cmd, _, err := rootCommand().Find([]string{"events", sub})
		if err != nil {
			t.Fatal(err)
		}
		var gotArgs, gotSettings []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			_, arg := f.Annotations[argumentAnnotation]
			hasEnv := strings.Contains(f.Usage, "[$HERALD_")
			switch {
			case f.Name == "help":
			case arg && !hasEnv:
				gotArgs = append(gotArgs, f.Name)
			case !arg && hasEnv:
				gotSettings = append(gotSettings, f.Name)
			default:
				t.Errorf("events %s --%s: argument %t, environment variable %t", sub, f.Name, arg, hasEnv)
			}
		})
		slices.Sort(args)
		slices.Sort(settings)
		slices.Sort(gotSettings)
		if !slices.Equal(gotArgs, args) || !slices.Equal(gotSettings, settings) {
			t.Errorf("events %s: arguments %v and settings %v, want %v and %v", sub, gotArgs, gotSettings, args, settings)
		}
	}
	// Set or not, a variable of that name changes nothing.
	l := newEventsLog(t)
	t.Setenv("HERALD_EVENTS_OUTPUT", "jsonl")
	t.Setenv("HERALD_EVENTS_TYPE", "NotificationSent")
	out := mustRunHerald(t, "events", "list", "--database-url", l.url)
	if !strings.HasPrefix(out, "POSITION") || strings.Count(out, "\n") != len(l.all)+1 {
		t.Errorf("with HERALD_EVENTS_* set, list wrote:\n%s", out)
	}
}

// Bad flags are refused with a message naming them, before anything is read: the database here
// does not exist, and a command that tried it would fail differently, and later.
func TestEventsRefusesBadFlags(t *testing.T) {
	clearHeraldEnv(t)
	nowhere := "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"
	id := uuid.NewString()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "--type", "NotificationExploded"}, `--type: unknown event type "NotificationExploded"; the log holds NotificationQueued, NotificationProcessing, NotificationSent`},
		{[]string{"list", "--type", "NotificationSent,sent"}, `--type: unknown event type "sent"`},
		{[]string{"list", "--stream", "ada@example.com"}, `--stream: "ada@example.com" is not a stream id`},
		{[]string{"list", "--from-position", "9", "--to-position", "3"}, "--from-position: 9 is past the end of the range, 3"},
		{[]string{"list", "--from-position", "-1"}, "--from-position: -1"},
		{[]string{"list", "--since", "2026-11-28T10:00:00Z", "--until", "2026-11-28T09:00:00Z"}, "--since: 2026-11-28T10:00:00Z is after the end of the range, 2026-11-28T09:00:00Z"},
		{[]string{"list", "--since", "tomorrow"}, `--since "tomorrow": want an RFC 3339 time such as 2026-11-28T10:00:00Z, or a duration ago such as 90m or 24h`},
		{[]string{"list", "--until", "2026-11-28"}, `--until "2026-11-28": want an RFC 3339 time`},
		{[]string{"list", "--since", "-1h"}, `--since "-1h"`},
		{[]string{"list", "--limit", "-1"}, "--limit: -1"},
		{[]string{"list", "--limit", "ten"}, `invalid argument "ten" for "--limit"`},
		{[]string{"list", "-o", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: want table, jsonl or json`},
		{[]string{"list", "extra"}, "unknown command"},
		{[]string{"list", "--stream", "x", "--limit", "-2"}, `--limit: -2: want 0 (no limit) or more; --stream: "x" is not a stream id`},
		{[]string{"replay"}, "--as-of: required"},
		{[]string{"replay", "--stream", id}, "--as-of: required"},
		{[]string{"replay", "--as-of", "last week"}, `--as-of "last week": want an RFC 3339 time`},
		{[]string{"replay", "--as-of", "1h", "--stream", "nope"}, `--stream "nope": not a notification id`},
		{[]string{"replay", "--as-of", "1h", "-o", "csv"}, `invalid argument "csv" for "-o, --output" flag: want table, jsonl or json`},
		{[]string{"replay", "--as-of", "1h", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			start := time.Now()
			out, err := runHerald(t, append(append([]string{"events"}, tt.args...), "--database-url", nowhere)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("wrote %q before failing", out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s: it tried the database first", d)
			}
		})
	}
}

func TestEventsHelp(t *testing.T) {
	clearHeraldEnv(t)
	for cmd, wants := range map[string][]string{
		"list": {"table", "jsonl", "json", "duration ago", "inclusive", "read-only",
			"-o, --output", "[$HERALD_DATABASE_URL]", strings.Join(events.Types, ", ")},
		"replay": {"--as-of", "duration ago", "summary", "future", "by_status"},
	} {
		out, err := runHerald(t, "events", cmd, "--help")
		if err != nil {
			t.Fatalf("events %s --help: %v", cmd, err)
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("events %s --help does not mention %q", cmd, want)
			}
		}
	}
}
