// Package postgres is how every part of Herald — its services, its operator commands, its
// benchmark and its tests — connects to PostgreSQL: one way to open a named pool, to wait for a
// server that is not up yet, and to create and drop a database.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options says how to open a pool.
type Options struct {
	// Source names the URL in errors, e.g. "--database-url"; a parse error says which setting
	// is wrong without repeating the URL (and its password).
	Source string
	// AppName is the application_name the server shows for each connection (default "herald").
	AppName string
	// MaxConns bounds the pool (pgxpool's default when 0; a negative bound is refused).
	MaxConns int
	// Database, when set, replaces the database the URL names.
	Database string
	// Wait keeps trying, with a backoff of 200 ms doubling to 5 s, while the server cannot be
	// reached, until ctx ends, logging each failure as a warning on Logger. Without it the
	// first failure is returned.
	Wait bool
	// CreateMissing creates the database when the server says it does not exist.
	CreateMissing bool
	// Logger receives the warnings of Wait and the notice of a created database; nil discards.
	Logger *slog.Logger
	// Notices logs, on Logger, what the server says with RAISE NOTICE: a migration's report of
	// what it did.
	Notices bool
}

// Connect opens a pool to the database rawURL names and checks that it answers.
func Connect(ctx context.Context, rawURL string, o Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		if o.Source != "" {
			return nil, fmt.Errorf("%s: %w", o.Source, err)
		}
		return nil, fmt.Errorf("parse the database URL: %w", err)
	}
	switch {
	case o.MaxConns < 0:
		return nil, fmt.Errorf("a pool of %d connections: want at least 1", o.MaxConns)
	case o.MaxConns > 0:
		cfg.MaxConns = int32(o.MaxConns)
	}
	if o.Database != "" {
		cfg.ConnConfig.Database = o.Database
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = cmp.Or(o.AppName, "herald")
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Notices {
		cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			logger.InfoContext(ctx, n.Message, "postgres_severity", n.Severity)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	wait := 200 * time.Millisecond
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return pool, nil
		}
		if o.CreateMissing && IsMissingDatabase(err) {
			// A newcomer's first `herald migrate` should not need a createdb first.
			if err := CreateDatabase(ctx, cfg.ConnConfig, cfg.ConnConfig.Database); err != nil {
				pool.Close()
				return nil, err
			}
			logger.InfoContext(ctx, "database created", "database", cfg.ConnConfig.Database)
			continue
		}
		if !o.Wait || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		logger.WarnContext(ctx, "PostgreSQL unreachable, retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// IsMissingDatabase reports whether err is the server saying the database does not exist.
func IsMissingDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "3D000"
}

// CreateDatabase creates the database name on the server cfg connects to, connecting as cfg's
// user to cfg's database (to the server's "postgres" database when that is name itself). A
// database that exists already (made meanwhile by another process) is not an error.
func CreateDatabase(ctx context.Context, cfg *pgx.ConnConfig, name string) error {
	conn, err := adminConn(ctx, cfg, name)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name, ending its sessions, connecting as CreateDatabase does;
// one that does not exist is not an error.
func DropDatabase(ctx context.Context, cfg *pgx.ConnConfig, name string) error {
	conn, err := adminConn(ctx, cfg, name)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// adminConn connects as cfg's user to cfg's database, from which to create or drop the database
// name; when cfg names that very database (or none), to the server's "postgres" database.
func adminConn(ctx context.Context, cfg *pgx.ConnConfig, name string) (*pgx.Conn, error) {
	admin := cfg.Copy()
	if admin.Database == "" || admin.Database == name {
		admin.Database = "postgres"
	}
	return pgx.ConnectConfig(ctx, admin)
}

// WithDatabase returns rawURL naming the database name instead of its own.
func WithDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the URL it failed on: keep it (and its password) out of the error.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return "", fmt.Errorf("parse the database URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
