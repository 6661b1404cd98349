// Package migrations owns Herald's database schema: the append-only event log, the outbox the
// relay reads, the read models, and the offsets of their consumers. The SQL files are embedded in
// the binary and applied in order, under an advisory lock, by `herald migrate`.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// FS holds the numbered migration files.
//
//go:embed *.sql
var FS embed.FS

// Table is where the applied migrations are recorded.
const Table = "herald_schema_migrations"

// Migrator applies the migrations to one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// New returns a migrator for the database pool connects to. Close it after use.
func New(pool *pgxpool.Pool) (*Migrator, error) {
	db := stdlib.OpenDBFromPool(pool)
	// Several processes may start at once with --migrate: one migrates, the others wait for it.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, goose.WithTableName(Table), goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the migrator's connection.
func (m *Migrator) Close() error { return m.db.Close() }

// Applied is one migration applied by Up.
type Applied = goose.MigrationResult

// Status is one migration's state.
type Status = goose.MigrationStatus

// Up applies every pending migration and returns what it applied.
func (m *Migrator) Up(ctx context.Context) ([]*Applied, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	return res, nil
}

// Versions returns the schema version of the database and the one this binary needs.
func (m *Migrator) Versions(ctx context.Context) (current, target int64, err error) {
	current, target, err = m.provider.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	return current, target, nil
}

// Status lists every migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]*Status, error) {
	s, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return s, nil
}
