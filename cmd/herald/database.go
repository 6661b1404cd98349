package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/postgres"
)

// This file is the one way cmd connects to PostgreSQL: the services through dbConfig.pool, which
// waits for the database; commands run by hand through cliDB.connect, which gives up.

// dbConfig says where Herald's database is, as the services (URL) and as the owner of its tables
// (MigrateURL) connect to it.
type dbConfig struct {
	URL        string
	MigrateURL string
	MaxConns   int
	Migrate    bool
}

// register binds the database settings to the command's flags; migrateFlag adds --migrate and
// the owner's URL, for the long-running processes.
func (c *dbConfig) register(s *settings, migrateFlag bool) {
	s.URL(&c.URL, "database-url", "HERALD_DATABASE_URL", defaultDatabaseURL,
		"PostgreSQL connection URL; a primary and its standbys as several hosts (h1:5432,h2:5432) with target_session_attrs=read-write")
	s.Int(&c.MaxConns, "database-max-conns", "HERALD_DATABASE_MAX_CONNS", 20, "largest number of connections in this process's PostgreSQL pool (the relay and the projector each hold one more, for their consumer groups' locks)")
	if migrateFlag {
		s.Bool(&c.Migrate, "migrate", "HERALD_MIGRATE", false, "apply pending database migrations before starting")
		c.registerOwner(s)
	}
}

// registerOwner adds the owner's URL, for the commands that change the schema.
func (c *dbConfig) registerOwner(s *settings) {
	s.URL(&c.MigrateURL, "migrate-database-url", "HERALD_MIGRATE_DATABASE_URL", "",
		"PostgreSQL connection URL of the role that owns Herald's tables, for migrations; empty: --database-url")
}

// ownerURL is where migrations connect: the tables' owner. (Rebuilds run as the runtime role,
// through the functions migration 00007 lends it.)
func (c dbConfig) ownerURL() string { return cmp.Or(c.MigrateURL, c.URL) }

// runtimeRole is the role the services connect as: the user of --database-url.
func (c dbConfig) runtimeRole() (string, error) {
	cfg, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return "", fmt.Errorf("--database-url: %w", err)
	}
	return cfg.User, nil
}

// pool connects to PostgreSQL and checks the schema is current, applying the migrations first
// (as the owner) when asked to.
func (c dbConfig) pool(ctx context.Context, logger *slog.Logger) (*pgxpool.Pool, error) {
	if c.Migrate {
		if err := c.migrate(ctx, logger); err != nil {
			return nil, err
		}
	}
	pool, err := c.connect(ctx, logger, c.URL, false)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// migrate connects as the owner, creating the database if need be, applies the migrations and
// grants the runtime role what it needs.
func (c dbConfig) migrate(ctx context.Context, logger *slog.Logger) error {
	role, err := c.runtimeRole()
	if err != nil {
		return err
	}
	owner := c
	owner.MaxConns = 2
	pool, err := owner.connect(ctx, logger, c.ownerURL(), true)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrateUp(ctx, pool, role, logger)
}

// cliConnectTimeout bounds how long a command run by hand waits for PostgreSQL: it should fail
// with the reason, not wait for ever as a service does.
const cliConnectTimeout = 15 * time.Second

// cliDB is what every command run by hand (events, projections, poison, apikeys) needs to reach
// the database: where it is, and where its warnings go while it waits.
type cliDB struct {
	db   dbConfig
	logs logConfig
}

// register binds the database and log settings to the command's flags.
func (c *cliDB) register(s *settings) {
	c.db.register(s, false)
	c.logs.register(s)
}

// connect returns the command's logger and a pool on a database at the current schema. Unlike a
// service it gives up after cliConnectTimeout, saying why.
func (c cliDB) connect(ctx context.Context) (*pgxpool.Pool, *slog.Logger, error) {
	logger, err := c.logs.logger()
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, cliConnectTimeout)
	defer cancel()
	pool, err := c.db.pool(cctx, logger)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil, fmt.Errorf("PostgreSQL did not answer within %s (the warnings above say why): %w", cliConnectTimeout, err)
	}
	return pool, logger, err
}

// connect connects to PostgreSQL at url, waiting for it while it is unreachable.
// With create, a database that does not exist is created.
func (c dbConfig) connect(ctx context.Context, logger *slog.Logger, url string, create bool) (*pgxpool.Pool, error) {
	if c.MaxConns < 1 {
		return nil, fmt.Errorf("--database-max-conns: must be at least 1, not %d", c.MaxConns)
	}
	source := "--database-url"
	if url == c.MigrateURL {
		source = "--migrate-database-url"
	}
	return postgres.Connect(ctx, url, postgres.Options{
		// The owner's connection runs the migrations: what they report is worth reading.
		Source: source, MaxConns: c.MaxConns, Wait: true, CreateMissing: create, Logger: logger, Notices: url == c.ownerURL(),
	})
}
