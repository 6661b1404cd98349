package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
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

// ErrNotFound is wrapped by the errors Prove and ProveStream return for an event or stream the
// log does not have.
var ErrNotFound = errors.New("not in the log")

// Prove returns the proof that the event eventID is in the log checkpoint seq commits to (the
// latest checkpoint when seq is 0). It reads, in one read-only snapshot, the stored subtree roots
// beside the event's path and the leaves of at most two 2^SubtreeLevel blocks (the hashes of
// all the checkpoint's events, once, in O(log n) memory, when they are not stored or do not
// check out), and checks the proof before returning it: a log that no longer matches the
// checkpoint gets an error, not a proof.
func Prove(ctx context.Context, pool *pgxpool.Pool, eventID string, seq int64) (*Proof, error) {
	id, err := uuid.Parse(eventID)
	if err != nil {
		return nil, fmt.Errorf("event id %q: %w", eventID, err)
	}
	proofs, unsealed, err := prove(ctx, pool, `e.event_id = $1`, id, seq, fromSubtrees)
	switch {
	case err != nil:
		return nil, fmt.Errorf("prove event %s: %w", eventID, err)
	case len(unsealed) > 0:
		return nil, fmt.Errorf("prove event %s: %w", eventID, ErrNotCovered)
	case len(proofs) == 0:
		return nil, fmt.Errorf("prove event %s: %w", eventID, ErrNotFound)
	}
	return proofs[0], nil
}

// ProveStream returns the proofs of the events of stream the latest checkpoint covers, in
// version order, and how many of its events come after that checkpoint (no proof yet), read as
// Prove reads, once for all of them.
func ProveStream(ctx context.Context, pool *pgxpool.Pool, stream string) ([]*Proof, int, error) {
	id, err := uuid.Parse(stream)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %q: %w: %w", stream, ErrNotFound, err)
	}
	proofs, unsealed, err := prove(ctx, pool, `e.stream_id = $1`, id, 0, fromSubtrees)
	if err == nil && len(proofs) == 0 && len(unsealed) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("prove stream %s: %w", stream, err)
	}
	return proofs, len(unsealed), nil
}

// ProveNotification is ProveStream for a notification's stream only: a stream whose version 1
// is not a NotificationQueued (a suppression's, a webhook endpoint's, a template's) is not
// found, as the API shows no other stream as a notification. Nothing but the stream's first
// row is read for one that is not.
func ProveNotification(ctx context.Context, pool *pgxpool.Pool, id string) ([]*Proof, int, error) {
	stream, err := uuid.Parse(id)
	if err != nil {
		return nil, 0, fmt.Errorf("notification %q: %w: %w", id, ErrNotFound, err)
	}
	var isNotification bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM event_log WHERE stream_id = $1 AND stream_version = 1 AND event_type = $2)`,
		stream, events.TypeNotificationQueued).Scan(&isNotification); err != nil {
		return nil, 0, fmt.Errorf("prove notification %s: %w", id, err)
	}
	if !isNotification {
		return nil, 0, fmt.Errorf("prove notification %s: %w", id, ErrNotFound)
	}
	return ProveStream(ctx, pool, id)
}

// Export is a stream's events with their chain (Hash, Prev: each event's link to the one
// before), in version order, and, when it was asked for, the proof of each event the latest
// checkpoint covers.
type Export struct {
	// Events are every event of the stream, the checkpoint and path left empty.
	Events []*Proof
	// Proofs are the proofs of the events the latest checkpoint covers (with proof only).
	Proofs []*Proof
	// Unsealed is how many events no checkpoint covers yet (with proof only).
	Unsealed int
}

// ExportStream returns stream's events with their chain, checked link by link, and, with
// withProof, their proofs against the latest checkpoint (read as ProveStream reads them).
func ExportStream(ctx context.Context, pool *pgxpool.Pool, stream string, withProof bool) (*Export, error) {
	id, err := uuid.Parse(stream)
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w: %w", stream, ErrNotFound, err)
	}
	var exp Export
	if withProof {
		var unsealed []*Proof
		exp.Proofs, unsealed, err = prove(ctx, pool, `e.stream_id = $1`, id, 0, fromSubtrees)
		exp.Unsealed = len(unsealed)
		exp.Events = make([]*Proof, 0, len(exp.Proofs)+len(unsealed))
		for _, p := range exp.Proofs {
			e := *p
			e.Path, e.LeafIndex, e.Checkpoint = nil, 0, Checkpoint{}
			exp.Events = append(exp.Events, &e)
		}
		exp.Events = append(exp.Events, unsealed...)
	} else {
		err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			exp.Events, err = chainedEvents(ctx, tx, `e.stream_id = $1`, id)
			return err
		})
	}
	if err == nil && len(exp.Events) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("export stream %s: %w", stream, err)
	}
	for _, e := range exp.Events {
		prev := e.Prev
		if e.Event.Version == 1 {
			prev = Genesis
		}
		if EventHash(prev, &e.Event) != e.Hash {
			return nil, fmt.Errorf("export stream %s: version %d does not hash to its stored hash; run herald events verify", stream, e.Event.Version)
		}
	}
	return &exp, nil
}

// chainedEvents returns the events where selects (with arg), each with its stored hash and its
// stream's previous version's, in stream and version order.
func chainedEvents(ctx context.Context, tx pgx.Tx, where string, arg any) ([]*Proof, error) {
	rows, err := tx.Query(ctx, `SELECT e.transaction_id::text::bigint, e.global_position, e.event_id, e.stream_id, e.stream_version,
			e.event_type, e.occurred_at, e.data::text, e.metadata::text, e.hash, p.hash
		FROM event_log e
		LEFT JOIN event_log p ON p.stream_id = e.stream_id AND p.stream_version = e.stream_version - 1
		WHERE `+where+` ORDER BY e.stream_id, e.stream_version`, arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Proof, error) {
		p := &Proof{}
		var hash, prev []byte
		if err := row.Scan(&p.TransactionID, &p.Position, &p.Event.ID, &p.Event.Stream, &p.Event.Version, &p.Event.Type,
			&p.Event.Occurred, &p.Event.Data, &p.Event.Metadata, &hash, &prev); err != nil {
			return nil, err
		}
		if len(hash) != HashSize || (prev != nil && len(prev) != HashSize) || (prev == nil && p.Event.Version != 1) {
			return nil, fmt.Errorf("stream %s version %d: its chain is broken; run herald events verify",
				uuid.UUID(p.Event.Stream), p.Event.Version)
		}
		copy(p.Hash[:], hash)
		copy(p.Prev[:], prev)
		return p, nil
	})
}

// proveFrom says where prove takes a proof's path from.
type proveFrom int

const (
	// fromSubtrees takes it from the stored subtree roots, and from the leaves when they do not
	// cover it or give a proof that does not check out.
	fromSubtrees proveFrom = iota
	// fromLeaves takes it from every leaf up to the checkpoint.
	fromLeaves
	// fromSubtreesOnly takes it from the stored subtree roots and returns it unchecked (tests).
	fromSubtreesOnly
)

// prove proves the events where selects (with arg) against checkpoint seq (0: the latest), and
// returns the events the checkpoint does not cover apart, unproven.
func prove(ctx context.Context, pool *pgxpool.Pool, where string, arg any, seq int64, from proveFrom) ([]*Proof, []*Proof, error) {
	var proofs, unsealed []*Proof
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		all, err := chainedEvents(ctx, tx, where, arg)
		if err != nil || len(all) == 0 {
			return err
		}

		q, args := `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY seq DESC LIMIT 1`, []any{}
		if seq != 0 {
			q, args = `SELECT `+checkpointColumns+` FROM checkpoints WHERE seq = $1`, []any{seq}
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		cps, err := pgx.CollectRows(rows, scanCheckpoint)
		if err != nil {
			return err
		}
		if len(cps) == 0 && seq != 0 {
			return fmt.Errorf("there is no checkpoint %d", seq)
		}
		var cp Checkpoint
		if len(cps) > 0 {
			cp = cps[0]
		}
		for _, p := range all {
			if len(cps) == 0 || after(p.TransactionID, p.Position, cp.LastTransactionID, cp.LastPosition) {
				unsealed = append(unsealed, p)
				continue
			}
			p.Checkpoint = cp
			proofs = append(proofs, p)
		}
		if len(proofs) == 0 || from == fromLeaves {
			return proveFromLeaves(ctx, tx, cp, proofs)
		}
		cached, err := proveFromSubtrees(ctx, tx, cp, proofs, from == fromSubtreesOnly)
		if err != nil || cached || from == fromSubtreesOnly {
			return err
		}
		return proveFromLeaves(ctx, tx, cp, proofs)
	})
	if err != nil {
		return nil, nil, err
	}
	if from == fromSubtreesOnly {
		return proofs, unsealed, nil
	}
	for _, p := range proofs {
		if err := p.verify(nil); err != nil {
			return nil, nil, fmt.Errorf("checkpoint %d does not match the log; run herald events verify: %w", p.Checkpoint.Seq, err)
		}
	}
	return proofs, unsealed, nil
}

// proveFromSubtrees sets the leaf index and path of each of proofs from the stored subtree roots,
// and reports whether it could: whether they cover every proof and give one that leads to cp's
// root (unchecked leaves the second to the caller). A stored root is only a cache: one that
// does not check out costs the proof the reading of the leaves, never a wrong proof.
func proveFromSubtrees(ctx context.Context, tx pgx.Tx, cp Checkpoint, proofs []*Proof, unchecked bool) (bool, error) {
	s := newSubtreeProver(tx, uint64(cp.TreeSize))
	for _, p := range proofs {
		index, path, err := s.prove(ctx, p.TransactionID, p.Position)
		if errors.Is(err, errNotCached) {
			if unchecked {
				return false, err
			}
			return false, nil
		}
		if err != nil {
			return false, err
		}
		p.LeafIndex, p.Path = index, path
		if !unchecked && p.verify(nil) != nil {
			return false, nil
		}
	}
	return true, nil
}

// proveFromLeaves sets the leaf index and path of each of proofs from every leaf up to cp, in
// one pass.
func proveFromLeaves(ctx context.Context, tx pgx.Tx, cp Checkpoint, proofs []*Proof) error {
	if len(proofs) == 0 {
		return nil
	}
	provers := make([]*InclusionProver, len(proofs))
	for i, p := range proofs {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM event_log WHERE (transaction_id, global_position) < ($1::text::xid8, $2::bigint)`,
			fmt.Sprint(p.TransactionID), p.Position).Scan(&p.LeafIndex); err != nil {
			return err
		}
		prover, err := NewInclusionProver(p.LeafIndex, uint64(cp.TreeSize))
		if err != nil {
			return fmt.Errorf("checkpoint %d does not match the log; run herald events verify: %w", cp.Seq, err)
		}
		provers[i] = prover
	}
	rows, err := tx.Query(ctx, `SELECT transaction_id::text::bigint, global_position, hash FROM event_log
		ORDER BY transaction_id, global_position LIMIT $1`, cp.TreeSize)
	if err != nil {
		return err
	}
	var (
		h   Hash
		xid uint64
		pos int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&xid, &pos, (*rootScanner)(&h)}, func() error {
		leaf := LeafHash(xid, pos, h)
		for _, pr := range provers {
			pr.Add(leaf)
		}
		return nil
	}); err != nil {
		return err
	}
	for i, pr := range provers {
		leaf, path, err := pr.Proof()
		if err != nil || leaf != LeafHash(proofs[i].TransactionID, proofs[i].Position, proofs[i].Hash) {
			return fmt.Errorf("checkpoint %d does not match the log; run herald events verify", cp.Seq)
		}
		proofs[i].Path = path
	}
	return nil
}

// Verify checks the proof on its own: the event hashes, with its previous hash, to its hash; the
// path leads from it to the checkpoint's root; and the checkpoint is signed by the key its key
// id names among keys.
func (p *Proof) Verify(keys Keys) error {
	if len(keys) == 0 {
		return errors.New("a proof is checked against a public key")
	}
	return p.verify(keys)
}

func (p *Proof) verify(keys Keys) error {
	prev := p.Prev
	if p.Event.Version == 1 {
		prev = Genesis
	}
	if EventHash(prev, &p.Event) != p.Hash {
		return &Mismatch{Position: p.Position, Stream: uuid.UUID(p.Event.Stream).String(), Version: p.Event.Version, Field: "hash",
			Reason: "the event's contents, chained to the previous hash, do not hash to its hash"}
	}
	if err := VerifyInclusion(LeafHash(p.TransactionID, p.Position, p.Hash), p.LeafIndex, uint64(p.Checkpoint.TreeSize), p.Path, p.Checkpoint.Root); err != nil {
		return &Mismatch{Position: p.Position, Stream: uuid.UUID(p.Event.Stream).String(), Version: p.Event.Version,
			Checkpoint: p.Checkpoint.Seq, Field: "path", Reason: err.Error()}
	}
	if keys != nil {
		if err := p.Checkpoint.VerifySignature(keys); err != nil {
			return &Mismatch{Checkpoint: p.Checkpoint.Seq, Field: "signature", Reason: err.Error()}
		}
	}
	return nil
}
