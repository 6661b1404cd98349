package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/heraldtest"
)

// TestUnavailableClassifiesConnectionFailures: the failures a failover causes are unavailable
// (503, retry), each as pgconn returns it, also wrapped as the handlers wrap it; every other
// database error stays internal (500).
func TestUnavailableClassifiesConnectionFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Nothing listens on port 1: a real *pgconn.ConnectError.
	_, refused := pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5")
	if refused == nil {
		t.Fatal("connect to port 1 succeeded")
	}

	connect := func() *pgconn.PgConn {
		c, err := pgconn.Connect(ctx, heraldtest.AdminDatabaseURL())
		if err != nil {
			if heraldtest.Required() {
				t.Fatalf("PostgreSQL: %v", err)
			}
			t.Skipf("PostgreSQL is not reachable: %v", err)
		}
		return c
	}
	exec := func(c *pgconn.PgConn, sql string) error {
		_, err := c.Exec(ctx, sql).ReadAll()
		return err
	}

	// A connection already closed.
	closed := connect()
	closed.Close(ctx)
	closedErr := exec(closed, "SELECT 1")

	// A backend an administrator terminated, as a fast shutdown of the old primary does.
	victim, admin := connect(), connect()
	defer admin.Close(ctx)
	if err := exec(admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", victim.PID())); err != nil {
		t.Fatal(err)
	}
	terminatedErr := exec(victim, "SELECT 1")
	victim.Close(ctx)

	// A write in a read-only transaction, as on a primary that became a standby.
	ro := connect()
	defer ro.Close(ctx)
	readOnlyErr := exec(ro, "BEGIN READ ONLY; CREATE TEMP TABLE t (x int); COMMIT")
	_ = exec(ro, "ROLLBACK")

	// Errors of Herald's own making, or the client's, that the database reports.
	divErr := exec(ro, "SELECT 1/0")
	_ = exec(ro, "ROLLBACK")
	syntaxErr := exec(ro, "SELEC 1")

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connect refused", refused, true},
		{"connection closed", closedErr, true},
		{"backend terminated", terminatedErr, true},
		{"read-only transaction (25006)", readOnlyErr, true},
		{"unexpected EOF", fmt.Errorf("append: %w", io.ErrUnexpectedEOF), true},
		{"cannot connect now (57P03)", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		{"crash shutdown (57P02)", &pgconn.PgError{Code: "57P02"}, true},
		{"connection failure (08006)", &pgconn.PgError{Code: "08006"}, true},
		{"pool acquire deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), true},
		{"division by zero (22012)", divErr, false},
		{"syntax error (42601)", syntaxErr, false},
		{"unique violation (23505)", &pgconn.PgError{Code: "23505"}, false},
		{"a bug", errors.New("nil map"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error to classify")
			}
			for _, err := range []error{tt.err, fmt.Errorf("record v3: %w", tt.err)} {
				if got := unavailable(err); got != tt.want {
					t.Errorf("unavailable(%v) = %v, want %v", err, got, tt.want)
				}
			}
			if herald.ErrorCode(tt.err) != herald.EINTERNAL {
				t.Errorf("%v is already coded %s", tt.err, herald.ErrorCode(tt.err))
			}
		})
	}
}
