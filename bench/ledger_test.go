package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// appendTwo appends a stream's first two events to the run's database by hand, as any writer
// may, and returns their hashes.
func appendTwo(t *testing.T, ctx context.Context, s *scratch) [][]byte {
	t.Helper()
	stream := uuid.New()
	var hashes [][]byte
	for v := int64(1); v <= 2; v++ {
		var h []byte
		if err := s.Pool.QueryRow(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
			VALUES ($1, $2, $3, 'NotificationProcessing', '{"attempt": 1}') RETURNING hash`, uuid.New(), stream, v).Scan(&h); err != nil {
			t.Fatalf("append version %d: %v", v, err)
		}
		hashes = append(hashes, h)
	}
	return hashes
}

// --ledger off takes the chain out of the run's database, and only off does: the log still
// accepts appends, with a hash of zeros; chained and sealed leave the trigger hashing, and
// another database on the server keeps its chain whatever the run did to its own.
func TestLedgerOffUnchainsOnlyTheRunDatabase(t *testing.T) {
	ctx := t.Context()
	zero := make([]byte, 32)
	other := &scratch{Pool: heraldtest.NewDatabase(t).Pool}
	defer func() {
		for i, h := range appendTwo(t, ctx, other) {
			if bytes.Equal(h, zero) {
				t.Errorf("another database's version %d has a hash of zeros after the runs", i+1)
			}
		}
	}()
	for _, mode := range ledgers {
		t.Run(mode, func(t *testing.T) {
			s := &scratch{Pool: heraldtest.NewDatabase(t).Pool}
			var cleanup cleanups
			defer cleanup.run(ctx)
			if _, err := prepareLedger(ctx, Config{Ledger: mode}, s, &cleanup, t.Logf); err != nil {
				t.Fatal(err)
			}
			for i, h := range appendTwo(t, ctx, s) {
				if chained := !bytes.Equal(h, zero); chained != (mode != LedgerOff) {
					t.Errorf("version %d's hash is %x with --ledger %s", i+1, h, mode)
				}
			}
		})
	}
}

// --ledger sealed gives the processes a key they can sign with and a checkpoint file beside it,
// and removes both when the run ends.
func TestLedgerSealedMakesAKeyAndRemovesIt(t *testing.T) {
	ctx := t.Context()
	var cleanup cleanups
	env, err := prepareLedger(ctx, Config{Ledger: LedgerSealed}, &scratch{}, &cleanup, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	key, file := env["HERALD_CHECKPOINT_KEY"], env["HERALD_CHECKPOINT_FILE"]
	if _, err := ledger.ReadPrivateKey(key); err != nil {
		t.Fatalf("HERALD_CHECKPOINT_KEY=%s: %v", key, err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s has mode %v; want 0600", key, fi.Mode().Perm())
	}
	if filepath.Dir(file) != filepath.Dir(key) {
		t.Errorf("checkpoint file %s is not beside the key %s", file, key)
	}
	cleanup.run(ctx)
	if _, err := os.Stat(filepath.Dir(key)); !os.IsNotExist(err) {
		t.Errorf("the key's directory is still there after the run: %v", err)
	}
}
