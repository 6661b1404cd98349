package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/router"
)

// purgeIdempotencyKeys forgets expired idempotency keys every ten minutes until ctx is done.
func purgeIdempotencyKeys(ctx context.Context, acc *handlers.Acceptor, pool *pgxpool.Pool, logger *slog.Logger) error {
	tick := time.NewTicker(10 * time.Minute)
	defer tick.Stop()
	for {
		n, err := acc.PurgeIdempotencyKeys(ctx, pool)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "purging expired idempotency keys failed", "error", err)
		case n > 0:
			logger.InfoContext(ctx, "expired idempotency keys purged", "keys", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// purgeAttachments deletes, every hour until ctx is done, the stored attachments no send has
// used for retention. The events keep their hashes: the log stays whole.
func purgeAttachments(ctx context.Context, files *attachments.Store, retention time.Duration, logger *slog.Logger) error {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := files.Purge(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "sweeping unused attachments failed", "error", err)
		case n > 0:
			logger.InfoContext(ctx, "unused attachments deleted", "attachments", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// purgeOutbox deletes forwarded commands from the outbox every 30 seconds until ctx is done.
func purgeOutbox(ctx context.Context, relay *router.Relay, logger *slog.Logger) error {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if n, err := relay.PurgeOutbox(ctx); err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "purging forwarded commands failed", "error", err)
		} else if n > 0 {
			logger.DebugContext(ctx, "forwarded commands purged from the outbox", "commands", n)
		}
	}
}
