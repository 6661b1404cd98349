package router

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/ledger"
)

// sealerGroup is the sealer's name in the election: one sealer writes checkpoints at a time.
const sealerGroup = "checkpoint_sealer"

// SealerConfig tunes the sealer.
type SealerConfig struct {
	// Interval is how often it seals what the log gained (10 s by default). A log that did not
	// grow gets no checkpoint.
	Interval time.Duration
	// OnCheckpoint, if set, is given each checkpoint once it is committed: a copy for a witness
	// outside the database. Its error is logged; the checkpoint stays in the database.
	OnCheckpoint func(context.Context, ledger.Checkpoint) error
	// Witness, if set, returns the latest checkpoint kept outside the database (the checkpoint
	// file): the sealer refuses to sign unless the database's checkpoints still hold it
	// (ledger.Sealer.WithWitness). Without one, whoever can rewrite the database can have the
	// sealer sign a rewritten log.
	Witness ledger.Witness
	// PreviousKeys are the public keys, besides its own, the sealer accepts as signers of the
	// last checkpoint it extends: after a rotation, the old key (ledger.Sealer.WithPreviousKeys).
	PreviousKeys ledger.Keys
	// Metrics, if set, gets herald_sealer_refusing: 1 while the sealer refuses to sign.
	Metrics prometheus.Registerer
}

// Sealer is a consumer of the log that writes signed checkpoints (ledger.Sealer) every
// Interval. Its position is its last checkpoint. It runs in one process at a time, whichever
// holds its advisory lock, like the projector's projections; the others stand by.
type Sealer struct {
	pool     *pgxpool.Pool
	sealer   *ledger.Sealer
	cfg      SealerConfig
	logger   *slog.Logger
	health   *parts
	election string
	refusing prometheus.Gauge
}

// NewSealer returns a sealer of the log in pool, signing with key.
func NewSealer(pool *pgxpool.Pool, key ed25519.PrivateKey, cfg SealerConfig, logger *slog.Logger) *Sealer {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	refusing := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "herald", Subsystem: "sealer", Name: "refusing",
		Help: "1 while the sealer refuses to sign because the database's checkpoints are not what it signed (or witnessed), or the last is signed by a key it does not trust: alert on it"})
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(refusing)
	}
	sealer := ledger.NewSealer(pool, key)
	if cfg.Witness != nil {
		sealer = sealer.WithWitness(cfg.Witness)
	}
	if len(cfg.PreviousKeys) > 0 {
		sealer = sealer.WithPreviousKeys(cfg.PreviousKeys)
	}
	return &Sealer{pool: pool, sealer: sealer, cfg: cfg, logger: logger,
		health: newParts(sealerGroup), election: electionName("sealer"), refusing: refusing}
}

// Ready returns nil when the sealer runs here or stands by for another process.
func (s *Sealer) Ready(context.Context) error { return s.health.ready() }

// Run seals until ctx is done.
func (s *Sealer) Run(ctx context.Context) error {
	wait := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		started := time.Now()
		err := runElected(ctx, s.pool, s.election, []string{sealerGroup}, s.health, s.logger, func(ctx context.Context, _ int, running func()) error {
			running()
			return s.run(ctx)
		})
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait.reset()
		}
		s.logger.WarnContext(ctx, "sealer stopped; it starts again", "error", err, "retry_in", wait.next())
		wait.sleep(ctx)
	}
}

// run seals now, then every Interval, until ctx is done. A seal runs to its commit even when ctx
// is done meanwhile.
func (s *Sealer) run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		for {
			cp, full, err := s.sealer.Seal(context.WithoutCancel(ctx))
			if errors.Is(err, ledger.ErrSealedElsewhere) {
				s.logger.WarnContext(ctx, "another sealer wrote a checkpoint", "error", err)
				break
			}
			// Refusing is not a failure to retry at once: it stays until someone looks, and the
			// sealer checks again every interval.
			if errors.Is(err, ledger.ErrRefused) {
				s.refusing.Set(1)
				s.logger.ErrorContext(ctx, "the sealer refuses to sign: the checkpoints in the database are not what it signed, or the last is signed by a key it does not trust; run herald events verify --witness", "error", err)
				break
			}
			if err != nil {
				return err
			}
			s.refusing.Set(0)
			if cp == nil {
				break
			}
			s.logger.InfoContext(ctx, "checkpoint sealed", "seq", cp.Seq, "tree_size", cp.TreeSize, "last_position", cp.LastPosition, "key_id", cp.KeyID)
			if s.cfg.OnCheckpoint != nil {
				if err := s.cfg.OnCheckpoint(ctx, *cp); err != nil {
					s.logger.ErrorContext(ctx, "could not copy the checkpoint out of the database", "seq", cp.Seq, "error", err)
				}
			}
			if !full || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
