package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/ledger"
)

// The ledgers a run can measure Herald with (--ledger): what the tamper-evident log costs is the
// difference between runs of the same build that differ in this alone.
const (
	// LedgerChained is Herald as it runs without a checkpoint key: every event chained to its
	// stream's previous one by the log's trigger, and no checkpoints.
	LedgerChained = "chained"
	// LedgerSealed adds the sealer: the run makes a signing key and a checkpoint file of its own,
	// so that `herald all` or `herald projector` signs checkpoints as a production Herald does.
	LedgerSealed = "sealed"
	// LedgerOff disables the chain trigger in the run's database (the columns it set get
	// defaults): a baseline to measure the chain against, not a way to run Herald, whose log
	// then no longer verifies.
	LedgerOff = "off"
	// LedgerUnknown is what a report says of a Herald bench did not start (--url): its ledger is
	// that Herald's own.
	LedgerUnknown = "unknown"
)

// ledgers are the values --ledger takes, in the order help lists them.
var ledgers = []string{LedgerChained, LedgerSealed, LedgerOff}

// unchainSQL turns the chain off in a scratch database: the trigger is disabled, and the columns
// it filled take what a log without the chain would have, a position from the sequence and a
// hash of zeros (the column refuses a NULL).
const unchainSQL = `ALTER TABLE event_log DISABLE TRIGGER event_log_chain;
ALTER TABLE event_log ALTER COLUMN global_position SET DEFAULT nextval('event_log_global_position_seq'::regclass);
ALTER TABLE event_log ALTER COLUMN hash SET DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea`

// prepareLedger sets the run's database and the processes' environment up for cfg.Ledger, and
// registers in cleanup the removal of what it made. The environment it returns goes under --env.
func prepareLedger(ctx context.Context, cfg Config, s *scratch, cleanup *cleanups, say func(string, ...any)) (map[string]string, error) {
	switch cfg.Ledger {
	case LedgerOff:
		if _, err := s.Pool.Exec(ctx, unchainSQL); err != nil {
			return nil, fmt.Errorf("turn the chain off in the run's database (--ledger off): %w", err)
		}
		return nil, nil
	case LedgerSealed:
		dir, err := os.MkdirTemp("", "herald-bench-ledger-")
		if err != nil {
			return nil, fmt.Errorf("make a directory for the checkpoint key: %w", err)
		}
		cleanup.add(func(context.Context) { _ = os.RemoveAll(dir) })
		key := filepath.Join(dir, "checkpoint.key")
		pub, err := ledger.GenerateKeyFile(key)
		if err != nil {
			return nil, err
		}
		// The private key goes with the run; its public half checks a kept database's checkpoints.
		say("sealing with a key made for the run, public key %s", ledger.EncodePublicKey(pub))
		return map[string]string{
			"HERALD_CHECKPOINT_KEY":  key,
			"HERALD_CHECKPOINT_FILE": filepath.Join(dir, "checkpoints.jsonl"),
		}, nil
	}
	return nil, nil
}

// checkpointsSealed counts the checkpoints in the run's database.
func checkpointsSealed(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the checkpoints sealed: %w", err)
	}
	return n, nil
}
