package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/herald-notify/herald/redact"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://herald:s3cret@db:5432/herald?sslmode=disable", "postgres://herald:xxxxx@db:5432/herald?sslmode=disable"},
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"postgres://postgres@127.0.0.1:5432/herald", "postgres://postgres@127.0.0.1:5432/herald"},
		{"https://api.twilio.com", "https://api.twilio.com"},
		// url.Parse refuses these; the password must go all the same.
		{"amqp://guest:s3cret@127.0.0.1:bad/", "amqp://guest:xxxxx@127.0.0.1:bad/"},
		{"amqp://guest:s3c@ret@host/", "amqp://guest:xxxxx@host/"},
		{"host=db user=herald password=s3cret dbname=herald", "host=db user=herald password=xxxxx dbname=herald"},
		{"host=db password='s3 cret' dbname=herald", "host=db password=xxxxx dbname=herald"},
		// A cluster's nodes: every URL's password goes, not only the first's.
		{"amqp://u:S3cret@h:1/v,amqp://u:S3cret@h:2/v", "amqp://u:xxxxx@h:1/v,amqp://u:xxxxx@h:2/v"},
		{"amqp://u:a,b@h:1/v, amqps://u:Other@h:2/v", "amqp://u:xxxxx@h:1/v, amqps://u:xxxxx@h:2/v"},
		{"amqp://u:S3cret@h1:5672,h2:5672/v", "amqp://u:xxxxx@h1:5672,h2:5672/v"},
		{"amqp://u:s3/+cr@h:bad/v,amqp://u:s3/+cr@h:2/v", "amqp://u:xxxxx@h:bad/v,amqp://u:xxxxx@h:2/v"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redact.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`parse "amqp://guest:s3cret@127.0.0.1:bad/": invalid port`, `parse "amqp://guest:xxxxx@127.0.0.1:bad/": invalid port`},
		{"dial postgres://a:b@h/db and amqp://c:d@h/ failed", "dial postgres://a:xxxxx@h/db and amqp://c:xxxxx@h/ failed"},
		// Not credentials: a port, a path with an @, an email address.
		{"listen on http://127.0.0.1:8080/x@y", "listen on http://127.0.0.1:8080/x@y"},
		{"sent to ada@example.com", "sent to ada@example.com"},
		{"no password here", "no password here"},
	}
	for _, tt := range tests {
		if got := redact.Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://herald:s%2Fcret@db/herald", "s/cret"},
		{"amqp://guest:s3cret@127.0.0.1:bad/", "s3cret"},
		{"amqp://guest:s3c@ret@host/", "s3c@ret"},
		{"postgres://postgres@127.0.0.1/herald", ""},
		{"host=db password='s3 cret'", "s3 cret"},
		{"host=db password=s3cret dbname=x", "s3cret"},
		{"https://api.twilio.com", ""},
	}
	for _, tt := range tests {
		if got := redact.Password(tt.in); got != tt.want {
			t.Errorf("Password(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecretsMasksKnownValuesInAnyForm(t *testing.T) {
	s := redact.New("tok/en+1", "ab", "")
	tests := []struct{ in, want string }{
		{"auth token tok/en+1 refused", "auth token xxxxx refused"},
		{"quoted in a URL: tok%2Fen+1 and tok%2Fen%2B1", "quoted in a URL: xxxxx and xxxxx"},
		// A parser cut the password at its /: the pieces are secret too.
		{`invalid port ":en+1" after host "u:tok"`, `invalid port ":xxxxx" after host "u:tok"`},
		// Too short to mask everywhere; still masked in a URL.
		{"ab stays, amqp://u:ab@h/ does not", "ab stays, amqp://u:xxxxx@h/ does not"},
	}
	for _, tt := range tests {
		if got := s.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var none *redact.Secrets
	if got := none.String("amqp://u:pw@h/"); got != "amqp://u:xxxxx@h/" {
		t.Errorf("nil Secrets: %q", got)
	}
}

func TestSecretsErrorKeepsTheChain(t *testing.T) {
	s := redact.New("s3cret-value")
	err := s.Error(fmt.Errorf("open s3cret-value: %w", fs.ErrNotExist))
	if strings.Contains(err.Error(), "s3cret-value") {
		t.Errorf("error %q shows the secret", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is lost the wrapped error: %v", err)
	}
	if s.Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
}

type config struct{ URL string }

func TestHandlerMasksEveryPartOfARecord(t *testing.T) {
	const secret = "s3cret-value"
	var buf bytes.Buffer
	logger := slog.New(redact.New(secret).Handler(slog.NewJSONHandler(&buf, nil)))
	logger = logger.With("preset", "token "+secret).WithGroup("g")
	logger.Error("failed with "+secret,
		"error", errors.New("dial amqp://guest:other@h/: refused"),
		"config", config{URL: "postgres://u:" + secret + "@h/db"},
		slog.Group("inner", "password", secret),
		"count", 3,
	)
	out := buf.String()
	for _, leak := range []string{secret, "other"} {
		if strings.Contains(out, leak) {
			t.Errorf("log shows %q: %s", leak, out)
		}
	}
	for _, kept := range []string{`"count":3`, `"preset":"token xxxxx"`, "amqp://guest:xxxxx@h/"} {
		if !strings.Contains(out, kept) {
			t.Errorf("log lost %s: %s", kept, out)
		}
	}
}

// BenchmarkHandler measures what masking adds to a typical log record (an HTTP request's).
func BenchmarkHandler(b *testing.B) {
	record := func(logger *slog.Logger) {
		logger.Info("http request", "method", "POST", "route", "/api/v1/notifications/send",
			"path", "/api/v1/notifications/send", "status", 202, "bytes", 187, "duration_ms", 3.2,
			"correlation_id", "0193a3c1-7d2e-7b7a-9c1e-3f4a5b6c7d8e")
	}
	b.Run("plain", func(b *testing.B) {
		logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			record(logger)
		}
	})
	b.Run("masked", func(b *testing.B) {
		secrets := redact.New("Pl4nted-db-password", "Pl4nted-amqp-password", "Pl4nted-smtp-password", "Pl4nted-sms-token")
		logger := slog.New(secrets.Handler(slog.NewJSONHandler(io.Discard, nil)))
		b.ReportAllocs()
		for b.Loop() {
			record(logger)
		}
	})
}

// TestWithMasksBoth: With masks what its receiver masked and the values added, a nil receiver
// included.
func TestWithMasksBoth(t *testing.T) {
	s := redact.New("flag-secret-1234").With("header-secret-5678")
	if got := s.String("a flag-secret-1234 and a header-secret-5678"); strings.Contains(got, "secret") {
		t.Errorf("With: %q", got)
	}
	var none *redact.Secrets
	if got := none.With("header-secret-5678").String("header-secret-5678"); strings.Contains(got, "secret") {
		t.Errorf("nil With: %q", got)
	}
}
