package migrations_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/migrations"
)

// migratedTo returns a new database migrated down to version, and the provider that migrates it
// up again: the ground a migration's backfill is tested on.
func migratedTo(t *testing.T, version int64) (*heraldtest.Database, *goose.Provider) {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	t.Cleanup(func() { sqlDB.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, goose.WithTableName(migrations.Table))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), version); err != nil {
		t.Fatal(fmt.Errorf("down to %d: %w", version, err))
	}
	return db, p
}
