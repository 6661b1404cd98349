package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/router"
	"github.com/herald-notify/herald/wire"
)

// addSealer adds the sealer of the log's checkpoints, when a key is configured.
func (cfg *processConfig) addSealer(pr *process) error {
	pc := cfg.projector
	if pc.CheckpointKey == "" {
		pr.logger.Info("no checkpoint key (--checkpoint-key, HERALD_CHECKPOINT_KEY): the log is hash-chained, but no checkpoints are signed")
		return nil
	}
	key, err := ledger.ReadPrivateKey(pc.CheckpointKey)
	if err != nil {
		return fmt.Errorf("--checkpoint-key: %w", err)
	}
	sc := router.SealerConfig{Interval: pc.CheckpointInterval}
	if pc.CheckpointFile != "" {
		file := pc.CheckpointFile
		sc.OnCheckpoint = func(_ context.Context, cp ledger.Checkpoint) error { return appendCheckpoint(file, cp) }
	}
	sealer := router.NewSealer(pr.pool, key, sc, pr.logger)
	pr.add("sealer", sealer.Run, sealer.Ready)
	return nil
}

// appendCheckpoint appends cp to file as one JSON line, and syncs it: a witness's copy.
func appendCheckpoint(file string, cp ledger.Checkpoint) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := writeJSONLine(f, wire.NewCheckpoint(cp)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ledgerProofs proves notifications' events for the API.
type ledgerProofs struct{ pool *pgxpool.Pool }

func (p ledgerProofs) ProveStream(ctx context.Context, stream string) ([]*ledger.Proof, int, error) {
	return ledger.ProveStream(ctx, p.pool, stream)
}
