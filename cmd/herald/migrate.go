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

func migrateUp(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
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
	return nil
}

// errSchemaBehind says what to do when the database is older than the binary.
var errSchemaBehind = errors.New("database schema is behind this herald")

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
migration and whether it has been applied.`,
		Args:      cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"up", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, err := logs.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			db.Migrate = false
			pool, err := db.connect(ctx, logger, len(args) == 0 || args[0] == "up")
			if err != nil {
				return err
			}
			defer pool.Close()
			if len(args) == 1 && args[0] == "status" {
				return printMigrationStatus(ctx, cmd, pool)
			}
			return migrateUp(ctx, pool, logger)
		},
	}
	s := newSettings(cmd)
	db.register(s, false)
	logs.register(s)
	return cmd
}

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
