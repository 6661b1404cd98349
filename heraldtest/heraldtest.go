// Package heraldtest gives Herald's integration tests their real dependencies: a fresh, migrated
// PostgreSQL database and a private RabbitMQ virtual host per test, both dropped afterwards, and
// the herald binary built from the tree. It is the testing.TB layer over package harness, which
// does the work.
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
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/harness"
)

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultAMQPURL     = "amqp://guest:guest@127.0.0.1:5672/"
	defaultRabbitAPI   = "http://guest:guest@127.0.0.1:15672"
)

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool { return os.Getenv("HERALD_TEST_REQUIRE_SERVICES") == "1" }

// AdminDatabaseURL is HERALD_TEST_DATABASE_URL: an account that may create databases and roles.
func AdminDatabaseURL() string { return env("HERALD_TEST_DATABASE_URL", defaultDatabaseURL) }

// AMQPURL is HERALD_TEST_AMQP_URL: RabbitMQ's AMQP endpoint, in its default vhost.
func AMQPURL() string { return env("HERALD_TEST_AMQP_URL", defaultAMQPURL) }

// RabbitMQAPI is HERALD_TEST_RABBITMQ_API: RabbitMQ's management API, with its credentials.
func RabbitMQAPI() string {
	return strings.TrimRight(env("HERALD_TEST_RABBITMQ_API", defaultRabbitAPI), "/")
}

// unavailable skips the test because a service is missing, or fails it when services are
// required (HERALD_TEST_REQUIRE_SERVICES=1).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (HERALD_TEST_REQUIRE_SERVICES=1, so this is a failure; see README: Running the tests)", msg)
	}
	t.Skipf("%s; skipping (start the services with `make services`, or set HERALD_TEST_REQUIRE_SERVICES=1 to fail instead)", msg)
}

// env returns the environment variable name, or def when it is unset or empty.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Database is a fresh, migrated database for one test. Hand URL to what runs as the owner of its
// tables (`herald migrate`, a projection rebuild) and RuntimeURL, which connects as its runtime
// role Runtime, to Herald's processes.
type Database = harness.Database

// NewDatabase creates a database, applies Herald's migrations to it, creates its runtime role
// with the grants `herald migrate` gives, and drops both when the test ends.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := harness.CreateDatabase(ctx, AdminDatabaseURL(), harness.DatabaseOptions{
		Prefix: "herald_test_", Migrate: true, RuntimeRole: true, MaxConns: 20, AppName: "herald-test",
	})
	if unreachable := (*harness.UnreachableError)(nil); errors.As(err, &unreachable) {
		unavailable(t, "%v", unreachable)
	}
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("drop test database: %v", err)
		}
	})
	return db
}

// NewVHost creates a RabbitMQ virtual host for one test, so its queues (which have Herald's real
// names) are its own, and deletes it when the test ends. It returns the AMQP URL of the vhost.
func NewVHost(t testing.TB) string {
	t.Helper()
	return newVHost(t, RabbitMQAPI(), AMQPURL(), true)
}

// NewVHostAt is NewVHost on the RabbitMQ whose management API is api and AMQP endpoint amqpURL:
// for a suite that runs a node of its own.
// RabbitMQ is not optional there: a node that does not answer fails the test.
func NewVHostAt(t testing.TB, api, amqpURL string) string {
	t.Helper()
	return newVHost(t, api, amqpURL, false)
}

// newVHost creates a vhost for the test and deletes it when the test ends. mayBeMissing says
// whether an unreachable RabbitMQ skips the test (the shared services) or fails it.
func newVHost(t testing.TB, api, amqpURL string, mayBeMissing bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := harness.CreateVHost(ctx, api, amqpURL, harness.RandomName("herald_test_"))
	if unreachable := (*harness.UnreachableError)(nil); mayBeMissing && errors.As(err, &unreachable) {
		unavailable(t, "%v (enable it with `rabbitmq-plugins enable rabbitmq_management`)", unreachable)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Delete(context.Background()); err != nil {
			t.Log(err)
		}
	})
	return v.AMQPURL
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
