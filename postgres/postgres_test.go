package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/postgres"
)

func TestConnectCreatesAMissingDatabaseOnlyWhenAsked(t *testing.T) {
	db := heraldtest.NewDatabase(t) // a reachable server, or a skip that says what is missing
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := db.Name + "_created"
	url, err := postgres.WithDatabase(db.URL, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := postgres.DropDatabase(context.Background(), cfg, name); err != nil {
			t.Errorf("drop: %v", err)
		}
	})

	if _, err := postgres.Connect(ctx, url, postgres.Options{}); !postgres.IsMissingDatabase(err) {
		t.Fatalf("connect to a missing database without CreateMissing: got %v, want the server's 3D000", err)
	}
	pool, err := postgres.Connect(ctx, url, postgres.Options{CreateMissing: true, AppName: "herald-test", MaxConns: 3})
	if err != nil {
		t.Fatalf("connect with CreateMissing: %v", err)
	}
	var got, app string
	if err := pool.QueryRow(ctx, "SELECT current_database(), current_setting('application_name')").Scan(&got, &app); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if got != name || app != "herald-test" {
		t.Fatalf("connected to %q as %q, want %q as herald-test", got, app, name)
	}
	if pool.Config().MaxConns != 3 {
		t.Fatalf("MaxConns = %d, want 3", pool.Config().MaxConns)
	}
	if err := postgres.CreateDatabase(ctx, cfg, name); err != nil {
		t.Fatalf("creating a database that exists is not an error: %v", err)
	}
	if err := postgres.DropDatabase(ctx, cfg, name); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Connect(ctx, url, postgres.Options{}); !postgres.IsMissingDatabase(err) {
		t.Fatalf("after DropDatabase: got %v, want the database gone", err)
	}
}

func TestConnectWaitsUntilItsContextEnds(t *testing.T) {
	// Nothing listens on port 1: the pool cannot connect, so Wait retries until the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := postgres.Connect(ctx, "postgres://nobody:s3cret@127.0.0.1:1/none?connect_timeout=1", postgres.Options{Wait: true})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Fatalf("gave up after %s, before its context ended", took)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	_, err = postgres.Connect(context.Background(), "postgres://nobody:s3cret@127.0.0.1:1/none?connect_timeout=1", postgres.Options{})
	if err == nil {
		t.Fatal("connected to nothing")
	}
}

func TestParseErrorsNameTheSettingAndHideThePassword(t *testing.T) {
	_, err := postgres.Connect(context.Background(), "postgres://u:s3cret@127.0.0.1:5432/db?sslmode=nonsense", postgres.Options{Source: "--database-url"})
	if err == nil || !strings.HasPrefix(err.Error(), "--database-url: ") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v, want an error that names --database-url and not the password", err)
	}
	_, err = postgres.WithDatabase("postgres://u:s3cret@[::1/db", "x")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v, want an error without the password", err)
	}
	if _, err := postgres.Connect(context.Background(), "postgres://u@127.0.0.1:1/db", postgres.Options{MaxConns: -1}); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Fatalf("a pool of -1 connections: got %v, want it refused", err)
	}
	got, err := postgres.WithDatabase("postgres://u:p@h:5432/a?sslmode=disable", "b")
	if err != nil || got != "postgres://u:p@h:5432/b?sslmode=disable" {
		t.Fatalf("WithDatabase = %q, %v", got, err)
	}
}
