package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/migrations"
	"github.com/herald-notify/herald/postgres"
	"github.com/herald-notify/herald/redact"
)

// UnreachableError says a service the harness needs could not be reached at all, as opposed to
// one that answered with an error: a test skips on it (unless services are required), the bench
// names the setting to fix.
type UnreachableError struct {
	// Service is "PostgreSQL" or "RabbitMQ's management API".
	Service string
	// Addr is where it was looked for, its password masked.
	Addr string
	Err  error
}

// Error says which service was not reachable where, and why.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s is not reachable at %s: %v", e.Service, e.Addr, e.Err)
}

// Unwrap gives the connection error, for errors.Is and errors.As.
func (e *UnreachableError) Unwrap() error { return e.Err }

// DatabaseOptions says what scratch database to make.
type DatabaseOptions struct {
	// Name is the database's name; when empty it is Prefix followed by random hex.
	Name   string
	Prefix string
	// Migrate applies Herald's migrations.
	Migrate bool
	// RuntimeRole creates a login role of the database's own, named after it, holding only
	// what migrations.GrantRuntime gives Herald's services (needs Migrate).
	RuntimeRole bool
	// MaxConns and AppName shape the owner's pool (see postgres.Options).
	MaxConns int
	AppName  string
}

// Database is a scratch database, dropped by Drop.
type Database struct {
	Name string
	// URL connects as the account that created it, which owns its tables.
	URL string
	// Runtime and RuntimeURL are its runtime role and how to connect as it, when one was made.
	Runtime    string
	RuntimeURL string
	// Pool connects as the owner.
	Pool *pgxpool.Pool

	admin *pgx.ConnConfig
}

// RandomName returns prefix followed by 12 random hex digits: a name no other run picks.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// CreateDatabase creates a scratch database on the server adminURL names, as that account (which
// must be allowed to create databases, and roles for RuntimeRole). On error, what was made is
// dropped again. A server that cannot be reached is an *UnreachableError.
func CreateDatabase(ctx context.Context, adminURL string, o DatabaseOptions) (_ *Database, err error) {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("parse the database URL: %w", err)
	}
	if err := ping(ctx, cfg); err != nil {
		return nil, &UnreachableError{Service: "PostgreSQL", Addr: redact.URL(adminURL), Err: err}
	}
	d := &Database{Name: o.Name, admin: cfg}
	if d.Name == "" {
		d.Name = RandomName(o.Prefix)
	}
	if err := postgres.CreateDatabase(ctx, cfg, d.Name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = d.Drop(context.WithoutCancel(ctx))
		}
	}()
	if d.URL, err = postgres.WithDatabase(adminURL, d.Name); err != nil {
		return nil, err
	}
	d.Pool, err = postgres.Connect(ctx, d.URL, postgres.Options{MaxConns: o.MaxConns, AppName: o.AppName})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.Name, err)
	}
	if o.Migrate {
		if err := migrate(ctx, d); err != nil {
			return nil, err
		}
	}
	if o.RuntimeRole {
		if err := d.createRuntimeRole(ctx); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// ping checks that the server answers at all, before anything is created on it.
func ping(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// migrate applies Herald's migrations to d as its owner.
func migrate(ctx context.Context, d *Database) error {
	m, err := migrations.New(d.Pool)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	return nil
}

// createRuntimeRole makes the database's runtime role. Roles belong to the whole server: each
// database gets its own, named after it, so that suites running at the same time never share or
// drop one another's.
func (d *Database) createRuntimeRole(ctx context.Context) error {
	role, password := d.Name+"_app", RandomName("")+RandomName("")
	_, err := d.Pool.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+password+"'")
	if err != nil {
		return fmt.Errorf("create role %s: %w", role, err)
	}
	d.Runtime = role
	if err := migrations.GrantRuntime(ctx, d.Pool, role); err != nil {
		return err
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return fmt.Errorf("parse the database URL: %w", err)
	}
	u.User = url.UserPassword(role, password)
	d.RuntimeURL = u.String()
	return nil
}

// Drop closes the pool and drops the database and its runtime role; it reports what it could
// not remove.
func (d *Database) Drop(ctx context.Context) error {
	if d.Pool != nil {
		d.Pool.Close()
	}
	err := postgres.DropDatabase(ctx, d.admin, d.Name)
	if d.Runtime == "" {
		return err
	}
	// Its grants went with the database.
	conn, cerr := pgx.ConnectConfig(ctx, d.admin)
	if cerr == nil {
		_, cerr = conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{d.Runtime}.Sanitize())
		_ = conn.Close(ctx)
	}
	if cerr != nil {
		cerr = fmt.Errorf("drop role %s: %w", d.Runtime, cerr)
	}
	return errors.Join(err, cerr)
}
