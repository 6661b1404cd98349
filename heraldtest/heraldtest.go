// Package heraldtest gives Herald's integration tests their real dependencies: a fresh, migrated
// PostgreSQL database and a private RabbitMQ virtual host per test, both dropped afterwards.
//
// When a service is not reachable the test is skipped with a message saying what is missing and
// how to get it — unless HERALD_TEST_REQUIRE_SERVICES=1, which CI sets, turns the skip into a
// failure. The services are found through:
//
//	HERALD_TEST_DATABASE_URL  an account that may create databases (default postgres://postgres@127.0.0.1:5432/postgres)
//	HERALD_TEST_AMQP_URL      RabbitMQ's AMQP endpoint (default amqp://guest:guest@127.0.0.1:5672/)
//	HERALD_TEST_RABBITMQ_API  RabbitMQ's management API (default http://guest:guest@127.0.0.1:15672)
package heraldtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/migrations"
	"github.com/herald-notify/herald/redact"
)

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
	defaultRabbitAPI   = "http://guest:guest@127.0.0.1:15672"
)

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool { return os.Getenv("HERALD_TEST_REQUIRE_SERVICES") == "1" }

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (HERALD_TEST_REQUIRE_SERVICES=1, so this is a failure; see README: Running the tests)", msg)
	}
	t.Skipf("%s; skipping (start the services with `make services`, or set HERALD_TEST_REQUIRE_SERVICES=1 to fail instead)", msg)
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Database is a fresh, migrated database for one test.
type Database struct {
	// URL connects to it as the account that created and migrated it, which owns its tables:
	// hand it to what runs as the owner (`herald migrate`, a projection rebuild).
	URL string
	// RuntimeURL connects to it as Runtime, a role of its own that holds only what
	// migrations.GrantRuntime gives Herald's services: hand it to Herald's processes.
	RuntimeURL string
	Runtime    string
	// Pool connects as the owner.
	Pool *pgxpool.Pool
	Name string
}

// NewDatabase creates a database, applies Herald's migrations to it, creates its runtime role
// with the grants `herald migrate` gives, and drops both when the test ends.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminURL := env("HERALD_TEST_DATABASE_URL", defaultDatabaseURL)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		unavailable(t, "PostgreSQL is not reachable at %s: %v", redact.URL(adminURL), err)
	}
	defer admin.Close(context.Background())

	name := "herald_test_" + randomSuffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	// Roles belong to the whole server: each database gets its own, named after it, so that
	// suites running at the same time never share or drop one another's.
	runtime, runtimePassword := name+"_app", randomSuffix()+randomSuffix()
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		t.Fatalf("parse %s: %v", redact.URL(adminURL), err)
	}
	cfg.ConnConfig.Database = name
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		// Its grants went with the database.
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+runtime); err != nil {
			t.Logf("drop test role %s: %v", runtime, err)
		}
	})

	if _, err := admin.Exec(ctx, "CREATE ROLE "+runtime+" LOGIN PASSWORD '"+runtimePassword+"'"); err != nil {
		t.Fatalf("create test role: %v", err)
	}
	m, err := migrations.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := migrations.GrantRuntime(ctx, pool, runtime); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	ru := *u
	ru.User = url.UserPassword(runtime, runtimePassword)
	return &Database{URL: u.String(), RuntimeURL: ru.String(), Runtime: runtime, Pool: pool, Name: name}
}

// NewVHost creates a RabbitMQ virtual host for one test, so its queues (which have Herald's real
// names) are its own, and deletes it when the test ends. It returns the AMQP URL of the vhost.
func NewVHost(t testing.TB) string {
	t.Helper()
	api := strings.TrimRight(env("HERALD_TEST_RABBITMQ_API", defaultRabbitAPI), "/")
	amqpURL := env("HERALD_TEST_AMQP_URL", defaultAMQPURL)
	vhost := "herald_test_" + randomSuffix()
	if err := rabbitAPI(http.MethodPut, api, "/api/vhosts/"+vhost); err != nil {
		unavailable(t, "RabbitMQ's management API is not reachable at %s (enable it with `rabbitmq-plugins enable rabbitmq_management`): %v", redact.URL(api), err)
	}
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	user := u.User.Username()
	if err := rabbitAPIBody(http.MethodPut, api, "/api/permissions/"+vhost+"/"+url.PathEscape(user),
		`{"configure":".*","write":".*","read":".*"}`); err != nil {
		t.Fatalf("grant %s on vhost %s: %v", user, vhost, err)
	}
	t.Cleanup(func() {
		if err := rabbitAPI(http.MethodDelete, api, "/api/vhosts/"+vhost); err != nil {
			t.Logf("delete vhost %s: %v", vhost, err)
		}
	})
	a, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	a.Path = "/" + vhost
	return a.String()
}

func rabbitAPI(method, api, path string) error { return rabbitAPIBody(method, api, path, "") }

func rabbitAPIBody(method, api, path, body string) error {
	u, err := url.Parse(api + path)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
	if err != nil {
		return err
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pw)
		req.URL.User = nil
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}

// QueueDepth returns the number of messages ready for delivery in queue of the vhost amqpURL
// names, asking the broker itself (the management API's figures are sampled every few seconds).
// Messages delivered to a consumer and not yet acknowledged are not counted.
func QueueDepth(t testing.TB, amqpURL, queue string) int {
	t.Helper()
	return queueDepth(t, amqpURL, queue)
}

// Eventually waits until cond returns true, checking every 20ms, and fails the test with what
// after timeout. cond's error, if any, is reported with the failure.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			if lastErr != nil {
				t.Fatalf("timed out after %s waiting for %s: last error: %v", timeout, what, lastErr)
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitLogVisible waits until n events of db's log are visible to its consumers. An event becomes
// visible once every transaction older than its own has ended, anywhere on the server: other
// suites running beside a test can hold it back for a moment.
func WaitLogVisible(t testing.TB, db *Database, n int) {
	t.Helper()
	Eventually(t, 30*time.Second, fmt.Sprintf("%d events to be visible to the log's consumers", n), func() (bool, error) {
		var visible int
		err := db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM event_log WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&visible)
		return visible >= n, err
	})
}
