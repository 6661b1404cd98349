package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/migrations"
)

// migrateUp applies the pending migrations through pool, which connects as the tables' owner, and
// grants runtime — the role the services connect as — what they need. When the owner is also the
// runtime role (a one-role setup), there is nothing to grant, and only the log's triggers keep it
// append-only.
func migrateUp(ctx context.Context, pool *pgxpool.Pool, runtime string, logger *slog.Logger) error {
	m, err := migrations.New(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	results, err := m.Up(ctx)
	if err != nil {
		return err
	}
	for _, r := range results {
		logger.InfoContext(ctx, "migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	current, _, err := m.Versions(ctx)
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "database schema is current", "version", current, "applied", len(results))

	var owner string
	if err := pool.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("migrating role: %w", err)
	}
	if owner == runtime {
		logger.WarnContext(ctx, "the services connect as the role that owns the tables: only the log's triggers keep it append-only; set HERALD_MIGRATE_DATABASE_URL to an owner role and HERALD_DATABASE_URL to a runtime role",
			"role", owner)
		return nil
	}
	if err := migrations.GrantRuntime(ctx, pool, runtime); err != nil {
		return err
	}
	logger.InfoContext(ctx, "runtime role granted", "role", runtime, "owner", owner)
	return nil
}

// errSchemaBehind says what to do when the database is older than the binary.
var errSchemaBehind = errors.New("database schema is behind this herald")

// checkSchema refuses to run a herald newer than its database: the services start only on the
// schema they were built for.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := migrations.New(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	current, target, err := m.Versions(ctx)
	if err != nil {
		return err
	}
	if current < target {
		return fmt.Errorf("%w: it is at version %d, this herald needs %d; run `herald migrate` (or start with --migrate)", errSchemaBehind, current, target)
	}
	return nil
}

// migrateCommand applies the migrations, or shows which are applied.
func migrateCommand() *cobra.Command {
	var (
		db   dbConfig
		logs logConfig
	)
	cmd := &cobra.Command{
		Use:   "migrate [up|status]",
		Short: "Apply the database migrations (event log, outbox, read models), or show their status",
		Long: `migrate applies Herald's embedded SQL migrations to the database, in order, under an
advisory lock so that several processes can run it at once. "herald migrate status" lists each
migration and whether it has been applied.

It connects as the owner of Herald's tables (--migrate-database-url, or --database-url when that
is empty) and then grants the user of --database-url, the role the services run as, exactly what
they need: SELECT and INSERT on event_log, never UPDATE, DELETE, TRUNCATE or ownership.`,
		Args:      cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"up", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, err := logs.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 0 || args[0] == "up" {
				return db.migrate(ctx, logger)
			}
			pool, err := db.connect(ctx, logger, db.ownerURL(), false)
			if err != nil {
				return err
			}
			defer pool.Close()
			return printMigrationStatus(ctx, cmd, pool)
		},
	}
	s := newSettings(cmd)
	db.register(s, false)
	db.registerOwner(s)
	logs.register(s)
	return cmd
}

// printMigrationStatus prints each migration and whether and when it was applied.
func printMigrationStatus(ctx context.Context, cmd *cobra.Command, pool *pgxpool.Pool) error {
	m, err := migrations.New(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	statuses, err := m.Status(ctx)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%-8s %-9s %-20s %s\n", "VERSION", "STATE", "APPLIED AT", "FILE")
	for _, s := range statuses {
		at := "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "%-8d %-9s %-20s %s\n", s.Source.Version, s.State, at, s.Source.Path)
	}
	return nil
}
