package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Proof shows, to someone holding only it and the sealer's public key, that an event is in the
// log a signed checkpoint commits to: the event as hashed, its stream's previous hash, its leaf
// index and the inclusion path to the checkpoint's root, and the checkpoint.
type Proof struct {
	Event         ChainedEvent
	Position      int64
	TransactionID uint64
	Hash, Prev    Hash
	LeafIndex     uint64
	Path          []Hash
	Checkpoint    Checkpoint
}

// ErrNotCovered is returned by Prove when no checkpoint covers the event yet.
var ErrNotCovered = errors.New("no checkpoint covers the event yet")

// Prove returns the proof that the event eventID is in the log checkpoint seq commits to (the
// latest checkpoint when seq is 0). It reads the hashes of the checkpoint's events once, in one
// read-only snapshot, in O(log n) memory, and checks the proof before returning it: a log that
// no longer matches the checkpoint gets an error, not a proof.
func Prove(ctx context.Context, pool *pgxpool.Pool, eventID string, seq int64) (*Proof, error) {
	id, err := uuid.Parse(eventID)
	if err != nil {
		return nil, fmt.Errorf("event id %q: %w", eventID, err)
	}
	var p *Proof
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		p = &Proof{}
		var hash, prev []byte
		err := tx.QueryRow(ctx, `SELECT e.transaction_id::text::bigint, e.global_position, e.event_id, e.stream_id, e.stream_version,
				e.event_type, e.occurred_at, e.data::text, e.metadata::text, e.hash, p.hash
			FROM event_log e
			LEFT JOIN event_log p ON p.stream_id = e.stream_id AND p.stream_version = e.stream_version - 1
			WHERE e.event_id = $1`, id).Scan(&p.TransactionID, &p.Position, &p.Event.ID, &p.Event.Stream, &p.Event.Version,
			&p.Event.Type, &p.Event.Occurred, &p.Event.Data, &p.Event.Metadata, &hash, &prev)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("event %s is not in the log", eventID)
		}
		if err != nil {
			return err
		}
		if len(hash) != HashSize || (prev != nil && len(prev) != HashSize) || (prev == nil && p.Event.Version != 1) {
			return fmt.Errorf("event %s: its chain is broken; run herald events verify", eventID)
		}
		copy(p.Hash[:], hash)
		copy(p.Prev[:], prev)

		q := `SELECT ` + checkpointColumns + ` FROM checkpoints ORDER BY seq DESC LIMIT 1`
		args := []any{}
		if seq != 0 {
			q = `SELECT ` + checkpointColumns + ` FROM checkpoints WHERE seq = $1`
			args = append(args, seq)
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		cps, err := pgx.CollectRows(rows, scanCheckpoint)
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			if seq != 0 {
				return fmt.Errorf("there is no checkpoint %d", seq)
			}
			return ErrNotCovered
		}
		p.Checkpoint = cps[0]
		cp := &p.Checkpoint
		if after(p.TransactionID, p.Position, cp.LastTransactionID, cp.LastPosition) {
			return fmt.Errorf("checkpoint %d: %w", cp.Seq, ErrNotCovered)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE (transaction_id, global_position) < ($1::text::xid8, $2::bigint)`,
			fmt.Sprint(p.TransactionID), p.Position).Scan(&p.LeafIndex); err != nil {
			return err
		}
		prover, err := NewInclusionProver(p.LeafIndex, uint64(cp.TreeSize))
		if err != nil {
			return fmt.Errorf("checkpoint %d does not match the log; run herald events verify: %w", cp.Seq, err)
		}
		rows, err = tx.Query(ctx, `SELECT hash FROM event_log ORDER BY transaction_id, global_position LIMIT $1`, cp.TreeSize)
		if err != nil {
			return err
		}
		var h Hash
		if _, err := pgx.ForEachRow(rows, []any{(*rootScanner)(&h)}, func() error { prover.Add(h); return nil }); err != nil {
			return err
		}
		leaf, path, err := prover.Proof()
		if err != nil {
			return fmt.Errorf("checkpoint %d does not match the log; run herald events verify: %w", cp.Seq, err)
		}
		p.Path = path
		if leaf != p.Hash {
			return fmt.Errorf("checkpoint %d does not match the log; run herald events verify", cp.Seq)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	if err := p.verify(nil); err != nil {
		return nil, fmt.Errorf("prove event %s: checkpoint %d does not match the log; run herald events verify: %w", eventID, p.Checkpoint.Seq, err)
	}
	return p, nil
}

// Verify checks the proof on its own: the event hashes, with its previous hash, to its hash; the
// path leads from it to the checkpoint's root; and the checkpoint is signed by pub.
func (p *Proof) Verify(pub ed25519.PublicKey) error {
	if pub == nil {
		return errors.New("a proof is checked against a public key")
	}
	return p.verify(pub)
}

func (p *Proof) verify(pub ed25519.PublicKey) error {
	prev := p.Prev
	if p.Event.Version == 1 {
		prev = Genesis
	}
	if EventHash(prev, &p.Event) != p.Hash {
		return &Mismatch{Position: p.Position, Stream: uuid.UUID(p.Event.Stream).String(), Version: p.Event.Version, Field: "hash",
			Reason: "the event's contents, chained to the previous hash, do not hash to its hash"}
	}
	if err := VerifyInclusion(p.Hash, p.LeafIndex, uint64(p.Checkpoint.TreeSize), p.Path, p.Checkpoint.Root); err != nil {
		return &Mismatch{Position: p.Position, Stream: uuid.UUID(p.Event.Stream).String(), Version: p.Event.Version,
			Checkpoint: p.Checkpoint.Seq, Field: "path", Reason: err.Error()}
	}
	if pub != nil {
		if err := p.Checkpoint.VerifySignature(pub); err != nil {
			return &Mismatch{Checkpoint: p.Checkpoint.Seq, Field: "signature", Reason: err.Error()}
		}
	}
	return nil
}
