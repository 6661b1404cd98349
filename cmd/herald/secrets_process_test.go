package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/heraldtest"
)

// withCollector points env's trace exporter at a collector that is not there, with a planted
// bearer token in OTEL_EXPORTER_OTLP_HEADERS, and returns p planting the token too. The
// endpoint's own planted password would stop the process at start-up: a URL with credentials is
// refused (TestTracingEndpoint), and the collector's key goes in the headers, masked as well.
func withCollector(p planted, env map[string]string) planted {
	q := maps.Clone(p)
	q["OTEL_EXPORTER_OTLP_HEADERS"] = [2]string{"Pl4ntedHdrQz", "Pl4ntedHdrRk"}
	env["HERALD_OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:1"
	env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer%20" + url.PathEscape(q.password("OTEL_EXPORTER_OTLP_HEADERS"))
	return q
}

// secretsInUnreachable checks herald all waiting for services that are not there, until stopped.
func secretsInUnreachable(t *testing.T, p planted, secrets map[string]string) {
	// Nothing listens on port 1: herald waits, logging why, until stopped.
	bases := map[string]string{
		"HERALD_DATABASE_URL": "postgres://herald@127.0.0.1:1/herald?connect_timeout=2",
		"HERALD_AMQP_URL":     "amqp://herald@127.0.0.1:1/",
	}
	env := p.env(secrets, bases, false)
	p = withCollector(p, env)
	env["HERALD_HTTP_ADDR"] = "127.0.0.1:0"
	env["HERALD_LOG_LEVEL"] = "debug"
	h := spawnHerald(t, env, "all")
	heraldtest.Eventually(t, 60*time.Second, "herald all to log that PostgreSQL is unreachable", func() (bool, error) {
		return strings.Contains(h.output(), "PostgreSQL unreachable"), nil
	})
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	if !h.wait(60 * time.Second) {
		t.Error("herald all did not exit within 60s of SIGTERM")
	}
	out := h.output()
	if !strings.Contains(out, "herald: connect to PostgreSQL") {
		t.Errorf("herald all stopped while connecting; want the error printed:\n%s", out)
	}
	p.check(t, "herald all with unreachable services", out)
}

// secretsInRunning checks a running herald all whose dependencies die: its /readyz answers and its log.
func secretsInRunning(t *testing.T, p planted, secrets map[string]string) {
	db := heraldtest.NewDatabase(t) // trust authentication: the planted password is accepted
	bases := map[string]string{
		"HERALD_DATABASE_URL": db.URL,
		// A wrong password: RabbitMQ refuses the connection, a dead dependency.
		"HERALD_AMQP_URL": heraldtest.NewVHost(t),
		"HERALD_SMS_URL":  "http://sid@127.0.0.1:1/",
		// Secondaries that parse, so the process starts with failover and its breakers.
		"HERALD_SMTP_FAILOVER_URLS": failoverSMTPBase,
		"HERALD_SMS_FAILOVER_URLS":  "http://sid2@127.0.0.1:1/",
	}
	env := p.env(secrets, bases, false)
	p = withCollector(p, env)
	addr := freeAddr(t)
	for k, v := range map[string]string{
		"HERALD_HTTP_ADDR": addr, "HERALD_LOG_LEVEL": "debug", "HERALD_SHUTDOWN_GRACE": "20s",
		"HERALD_EMAIL_PROVIDER": "smtp", "HERALD_SMTP_USERNAME": "herald", "HERALD_SMTP_HOST": "127.0.0.1", "HERALD_SMTP_PORT": "1",
		"HERALD_SMS_PROVIDER": "http", "HERALD_SMS_ACCOUNT_SID": "AC0123", "HERALD_SMS_FROM": "+15005550006",
	} {
		env[k] = v
	}
	h := spawnHerald(t, env, "all")

	readyz := func() string { return readyzBody(addr) }
	var bodies []string
	heraldtest.Eventually(t, 60*time.Second, "/readyz to tell RabbitMQ refused", func() (bool, error) {
		body := readyz()
		ok := strings.Contains(body, `"rabbitmq"`) && !strings.Contains(body, "not connected to RabbitMQ yet") &&
			strings.Contains(body, `"postgres":"ok"`)
		if ok {
			bodies = append(bodies, body)
		}
		return ok, fmt.Errorf("last answer: %s", body)
	})

	// Then PostgreSQL goes too: the database is dropped under the process.
	dropDatabase(t, db)
	heraldtest.Eventually(t, 60*time.Second, "/readyz to tell PostgreSQL is gone", func() (bool, error) {
		body := readyz()
		ok := strings.Contains(body, `"postgres"`) && !strings.Contains(body, `"postgres":"ok"`)
		if ok {
			bodies = append(bodies, body)
		}
		return ok, fmt.Errorf("last answer: %s", body)
	})
	for _, b := range bodies {
		p.check(t, "/readyz", b)
	}

	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	if !h.wait(90 * time.Second) {
		t.Error("herald all did not exit within 90s of SIGTERM")
	}
	out := h.output()
	if !strings.Contains(out, "RabbitMQ unreachable") {
		t.Errorf("the log does not tell RabbitMQ refused:\n%s", out)
	}
	p.check(t, "herald all's log", out)
}

// readyzBody is what the /readyz of the herald listening on addr answers, or why it did not.
func readyzBody(addr string) string {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// dropDatabase drops db under whatever is connected to it: a dependency that dies.
func dropDatabase(t *testing.T, db *heraldtest.Database) {
	t.Helper()
	admin := strings.Replace(db.URL, "/"+db.Name, "/postgres", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE "+db.Name+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}
