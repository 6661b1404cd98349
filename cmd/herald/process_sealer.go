package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	prev, err := pc.previousKeys()
	if err != nil {
		return err
	}
	// Key ids only: the public keys are in the settings, and the private key is never printed.
	pr.logger.Info("sealer keys: it signs with key_id, and extends a last checkpoint signed by it or one of previous_key_ids",
		"key_id", ledger.KeyID(key.Public().(ed25519.PublicKey)), "previous_key_ids", prev.IDs())
	sc := router.SealerConfig{Interval: pc.CheckpointInterval, Metrics: pr.reg, PreviousKeys: prev}
	if pc.CheckpointFile != "" {
		file := pc.CheckpointFile
		sc.OnCheckpoint = func(_ context.Context, cp ledger.Checkpoint) error { return appendCheckpoint(file, cp) }
		sc.Witness = func(context.Context) (*ledger.Checkpoint, error) { return lastCheckpointInFile(file) }
	} else {
		pr.logger.Warn("no checkpoint file (--checkpoint-file, HERALD_CHECKPOINT_FILE): the sealer keeps nothing outside the database, and signs whatever checkpoints the database holds, rewritten or not")
	}
	sealer := router.NewSealer(pr.pool, key, sc, pr.logger)
	pr.add("sealer", sealer.Run, sealer.Ready)
	return nil
}

// appendCheckpoint appends cp to file as one JSON line, in one write, and syncs it: a witness's
// copy. A last line that a crash cut short (the file does not end with a newline) is mended
// first: see mendTail.
func appendCheckpoint(file string, cp ledger.Checkpoint) error {
	var line bytes.Buffer
	if err := writeJSONLine(&line, wire.NewCheckpoint(cp)); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := mendTail(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", file, err)
	}
	if _, err := f.Write(line.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mendTail makes f end with a whole line before a line is appended to it. The sealer writes a
// line after its checkpoint commits, so a last line without its newline is one a crash cut short:
// a whole checkpoint gets its newline; anything else is cut off (its checkpoint is in the
// database, and the line appended next follows it). Appended to as it is, the torn line and the
// next would run together into one line no reader could take.
func mendTail(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	off := max(st.Size()-checkpointLineMax, 0)
	tail := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(tail, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if tail[len(tail)-1] == '\n' {
		return nil
	}
	start := bytes.LastIndexByte(tail, '\n') + 1
	if start == 0 && off > 0 {
		return fmt.Errorf("its last line is longer than %d bytes", checkpointLineMax)
	}
	if _, err := parseCheckpointLine(tail[start:]); err == nil {
		_, err := f.Write([]byte("\n"))
		return err
	}
	return f.Truncate(off + int64(start))
}

// checkpointLineMax bounds a checkpoint file's line: a checkpoint with its frontier of at most
// 64 hashes takes under 5 KiB.
const checkpointLineMax = 64 << 10

// lastCheckpointInFile returns the last checkpoint of a checkpoint file, nil when there is no
// file or it is empty. It reads only the file's tail, however long the file.
func lastCheckpointInFile(file string) (*ledger.Checkpoint, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-checkpointLineMax, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	torn := len(buf) > 0 && buf[len(buf)-1] != '\n'
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	last := lines[len(lines)-1]
	if torn {
		// Cut short by a crash while it was appended (see mendTail): its checkpoint is in the
		// database, which may be ahead of the file. The line before it is the last whole one.
		if _, err := parseCheckpointLine(last); err != nil {
			if len(lines) == 1 {
				if off > 0 {
					return nil, fmt.Errorf("%s: its last line is longer than %d bytes", file, checkpointLineMax)
				}
				return nil, nil
			}
			lines = lines[:len(lines)-1]
			last = lines[len(lines)-1]
		}
	}
	if len(bytes.TrimSpace(last)) == 0 {
		return nil, nil
	}
	if off > 0 && len(lines) == 1 {
		return nil, fmt.Errorf("%s: its last line is longer than %d bytes", file, checkpointLineMax)
	}
	cp, err := parseCheckpointLine(last)
	if err != nil {
		return nil, fmt.Errorf("%s: its last line: %w", file, err)
	}
	return &cp, nil
}

func parseCheckpointLine(line []byte) (ledger.Checkpoint, error) {
	var w wire.Checkpoint
	if err := json.Unmarshal(line, &w); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("not a checkpoint as JSON: %w", err)
	}
	if w.Seq <= 0 {
		return ledger.Checkpoint{}, fmt.Errorf("seq %d: want a checkpoint's seq, 1 or more", w.Seq)
	}
	return w.Checkpoint()
}

// ledgerProofs proves notifications' events for the API.
type ledgerProofs struct{ pool *pgxpool.Pool }

func (p ledgerProofs) ProveNotification(ctx context.Context, id string) ([]*ledger.Proof, int, error) {
	return ledger.ProveNotification(ctx, p.pool, id)
}
