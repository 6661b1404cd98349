package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSealBatch is how many events one checkpoint covers at most beyond the one before: the
// sealer's transaction stays short however far behind it is, and it writes the next checkpoint
// at once.
const DefaultSealBatch = 100_000

// Sealer writes checkpoints: each extends the last one's tree by the events the log's consumers
// may read since (those of transactions older than every open one), and signs it.
type Sealer struct {
	pool *pgxpool.Pool
	key  ed25519.PrivateKey
	// trusted are the keys the sealer accepts as signers of the last checkpoint it extends: its
	// own, and those it was given as previous (a rotated key's).
	trusted Keys
	batch   int
	now     func() time.Time
	witness Witness
	// noBackfill is set, for every copy of the sealer, once the log up to a checkpoint was
	// found not to be what it signed: the stored subtree roots are not rebuilt from it again
	// at each seal (proofs read the leaves, and fail, as herald events verify does).
	noBackfill *atomic.Bool
}

// Witness returns the latest checkpoint the sealer signed, as kept outside the database (the
// checkpoint file), or nil when it keeps none yet.
type Witness func(context.Context) (*Checkpoint, error)

// WithWitness returns the sealer checking, before each seal, that the database's checkpoints
// still hold the one w returns: its latest checkpoint must be that one (same seq, tree size and
// root) or a later one, with that one still among the checkpoints as witnessed. Otherwise
// someone rewrote the checkpoints (and perhaps the log) behind the sealer's back, and it refuses
// to sign on top of them. Without a witness, a superuser who deletes every checkpoint and
// rewrites the log gets the sealer to sign the forgery from seq 1.
func (s *Sealer) WithWitness(w Witness) *Sealer {
	c := *s
	c.witness = w
	return &c
}

// NewSealer returns a sealer of the log in pool that signs with key.
func NewSealer(pool *pgxpool.Pool, key ed25519.PrivateKey) *Sealer {
	return &Sealer{pool: pool, key: key, trusted: NewKeys(key.Public().(ed25519.PublicKey)), batch: DefaultSealBatch,
		now: time.Now, noBackfill: new(atomic.Bool)}
}

// WithPreviousKeys returns the sealer accepting, besides its own key, prev as signers of the
// last checkpoint it extends: the keys it signed with before a rotation. Once it has signed a
// checkpoint with its own key, it needs them no more.
func (s *Sealer) WithPreviousKeys(prev Keys) *Sealer {
	c := *s
	c.trusted = s.trusted.With(prev)
	return &c
}

// WithBatch returns the sealer covering at most n new events a checkpoint.
func (s *Sealer) WithBatch(n int) *Sealer {
	c := *s
	c.batch = max(n, 1)
	return &c
}

// ErrSealedElsewhere is returned by Seal when another sealer wrote the checkpoint it was
// writing: two holders of the election for a moment. Nothing is lost; the next Seal goes on from
// that one.
var ErrSealedElsewhere = errors.New("another sealer wrote this checkpoint first")

// ErrRefused is wrapped by the error Seal returns when the database's checkpoints are not what
// the sealer signed: it writes nothing until they are (an operator must look).
var ErrRefused = errors.New("the sealer refuses to sign on top of the database's checkpoints")

// Seal writes the next checkpoint and returns it, or returns nil when the log has no event the
// last checkpoint does not cover. full says the checkpoint took a whole batch: there may be
// more to seal at once.
func (s *Sealer) Seal(ctx context.Context) (cp *Checkpoint, full bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var prev Checkpoint
		err := tx.QueryRow(ctx, `SELECT `+checkpointColumns+` FROM checkpoints ORDER BY seq DESC LIMIT 1`).Scan(
			&prev.LogID, &prev.Seq, &prev.TreeSize, &prev.LastTransactionID, &prev.LastPosition, (*rootScanner)(&prev.Root),
			&prev.Frontier, &prev.KeyID, &prev.Signature, &prev.CreatedAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read the last checkpoint: %w", err)
		}
		if s.witness != nil {
			w, err := s.witness(ctx)
			if err != nil {
				return fmt.Errorf("%w: read the witnessed checkpoint: %w", ErrRefused, err)
			}
			if w != nil {
				if err := extendsWitnessed(ctx, tx, &prev, w); err != nil {
					return err
				}
			}
		}
		tree, err := NewTreeFromFrontier(uint64(prev.TreeSize), prev.Frontier)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", prev.Seq, err)
		}
		// Sealing on top of a checkpoint whose frontier was changed would sign a lie.
		if prev.Seq != 0 && tree.Root() != prev.Root {
			return fmt.Errorf("%w: checkpoint %d: its frontier does not hash to its root: the checkpoints have been changed; run herald events verify", ErrRefused, prev.Seq)
		}
		// Nor on top of a checkpoint it did not sign, with its key or a previous one: its root
		// would then vouch for whatever that checkpoint's writer put in the tree.
		if _, known := s.trusted[prev.KeyID]; prev.Seq != 0 && !known {
			return fmt.Errorf("%w: checkpoint %d is signed by %s, which is neither this sealer's key %s nor a previous key it was given: if the checkpoint key was rotated, list the old public key in HERALD_CHECKPOINT_PREVIOUS_KEYS; otherwise run herald events verify",
				ErrRefused, prev.Seq, shownKeyID(prev.KeyID), KeyID(s.key.Public().(ed25519.PublicKey)))
		}
		if prev.Seq != 0 {
			if err := prev.VerifySignature(s.trusted); err != nil {
				return fmt.Errorf("%w: checkpoint %d: %w; run herald events verify", ErrRefused, prev.Seq, err)
			}
		}
		// Proofs read the subtree roots the checkpoints' trees are made of: a log sealed before
		// they were stored gets them now, once.
		// A log that is not what the checkpoint signed gets no stored roots, but its next
		// events are sealed all the same: the checkpoints go on committing to what comes.
		if prev.Seq != 0 && !s.noBackfill.Load() {
			switch err := backfillSubtrees(ctx, tx, &prev); {
			case errors.Is(err, errNotCheckpointed):
				s.noBackfill.Store(true)
			case err != nil:
				return err
			}
		}
		var logID [16]byte
		if err := tx.QueryRow(ctx, `SELECT id FROM log_identity`).Scan(&logID); err != nil {
			return fmt.Errorf("read the log's id: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT transaction_id::text::bigint, global_position, hash FROM event_log
			WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)
			  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY transaction_id, global_position LIMIT $3`, fmt.Sprint(prev.LastTransactionID), prev.LastPosition, s.batch)
		if err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		next := Checkpoint{LogID: logID, Seq: prev.Seq + 1}
		var (
			h        Hash
			subtrees subtreeCollector
		)
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&next.LastTransactionID, &next.LastPosition, (*rootScanner)(&h)}, func() error {
			subtrees.add(tree, next.LastTransactionID, next.LastPosition, LeafHash(next.LastTransactionID, next.LastPosition, h))
			n++
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		if n == 0 {
			return nil
		}
		next.TreeSize, next.Root, next.Frontier = int64(tree.Size()), tree.Root(), tree.Frontier()
		next.CreatedAt = s.now().UTC().Truncate(time.Microsecond)
		next.Sign(s.key)
		// checkpoint_append is the services' only way to write a checkpoint (they have no
		// INSERT on the table): the next seq only, never a smaller tree.
		var written bool
		err = tx.QueryRow(ctx, `SELECT checkpoint_append($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9)`,
			next.Seq, next.TreeSize, fmt.Sprint(next.LastTransactionID), next.LastPosition, next.Root[:], next.Frontier,
			next.KeyID, next.Signature, next.CreatedAt).Scan(&written)
		if err != nil {
			return fmt.Errorf("write checkpoint %d: %w", next.Seq, err)
		}
		if !written {
			return fmt.Errorf("checkpoint %d: %w", next.Seq, ErrSealedElsewhere)
		}
		if err := subtrees.store(ctx, tx); err != nil {
			return err
		}
		cp, full = &next, n == s.batch
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("seal: %w", err)
	}
	return cp, full, nil
}

// extendsWitnessed returns an error wrapping ErrRefused unless latest, the database's latest
// checkpoint, is w or comes after it with w still in the database as witnessed.
func extendsWitnessed(ctx context.Context, tx pgx.Tx, latest, w *Checkpoint) error {
	if latest.Seq < w.Seq {
		return fmt.Errorf("%w: the database's latest checkpoint is %d, but checkpoint %d was signed and witnessed: checkpoints were deleted",
			ErrRefused, latest.Seq, w.Seq)
	}
	db := latest
	if latest.Seq > w.Seq {
		rows, err := tx.Query(ctx, `SELECT `+checkpointColumns+` FROM checkpoints WHERE seq = $1`, w.Seq)
		if err != nil {
			return fmt.Errorf("read checkpoint %d: %w", w.Seq, err)
		}
		cps, err := pgx.CollectRows(rows, scanCheckpoint)
		if err != nil {
			return fmt.Errorf("read checkpoint %d: %w", w.Seq, err)
		}
		if len(cps) == 0 {
			return fmt.Errorf("%w: witnessed checkpoint %d is missing from the database", ErrRefused, w.Seq)
		}
		db = &cps[0]
	}
	if db.LogID != w.LogID {
		return fmt.Errorf("%w: the witnessed checkpoint %d is of log %x, the database's of log %x", ErrRefused, w.Seq, w.LogID[:], db.LogID[:])
	}
	if db.TreeSize != w.TreeSize || db.Root != w.Root {
		return fmt.Errorf("%w: checkpoint %d in the database (tree size %d, root %x) is not the one witnessed (tree size %d, root %x)",
			ErrRefused, w.Seq, db.TreeSize, db.Root[:], w.TreeSize, w.Root[:])
	}
	return nil
}

// rootScanner scans a 32-byte bytea into a Hash.
type rootScanner Hash

func (r *rootScanner) ScanBytes(b []byte) error { return r.set(b) }

func (r *rootScanner) set(b []byte) error {
	if len(b) != HashSize {
		return fmt.Errorf("a hash of %d bytes, not %d", len(b), HashSize)
	}
	copy(r[:], b)
	return nil
}

// After returns up to limit checkpoints whose seq is past seq, oldest first: what a consumer
// of the checkpoints that has seen up to seq reads next.
func After(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, seq int64, limit int) ([]Checkpoint, error) {
	rows, err := db.Query(ctx, `SELECT `+checkpointColumns+` FROM checkpoints WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("checkpoints after %d: %w", seq, err)
	}
	cps, err := pgx.CollectRows(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("checkpoints after %d: %w", seq, err)
	}
	return cps, nil
}

// List returns the checkpoints, oldest first; limit > 0 keeps the last limit of them.
func List(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, limit int) ([]Checkpoint, error) {
	q := `SELECT ` + checkpointColumns + ` FROM checkpoints ORDER BY seq`
	args := []any{}
	if limit > 0 {
		q = `SELECT * FROM (SELECT ` + checkpointColumns + ` FROM checkpoints ORDER BY seq DESC LIMIT $1) c ORDER BY seq`
		args = append(args, limit)
	}
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	cps, err := pgx.CollectRows(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return cps, nil
}
