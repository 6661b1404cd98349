package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// VerifyOptions say what Verify trusts.
type VerifyOptions struct {
	// Keys are the keys checkpoints may be signed with: each checkpoint's signature is checked
	// with the one its key id names, and one signed by a key not among them does not verify.
	// Without keys signatures are not checked (a key read from the database would prove
	// nothing against whoever holds it).
	Keys Keys
	// KeyUntil bounds the checkpoints a key may sign: one whose signature is checked (with Keys)
	// and whose key's range ends before its seq fails (field key_until), however good its
	// signature. After a rotation, the old key's range ends at its last checkpoint. Each key it
	// names must be among Keys: a range with no signature checked against its key would hold
	// nothing, so Verify refuses it rather than report a range it did not apply.
	KeyUntil KeyRanges
	// FromCheckpoint, when not 0, starts from that checkpoint — trusted once its signature and
	// its frontier's root check out — instead of the start of the log: only the events after it
	// are read, and the checkpoints after it.
	FromCheckpoint int64
	// Witnessed are checkpoints kept outside the database (the sealer's checkpoint file, or
	// roots an auditor noted): each must be in the database, with the same root (and tree size
	// and log id, when they are not zero). A log rewritten with its checkpoints deleted and
	// signed again would otherwise verify, were the key at hand. They are read once, in any
	// order, before the log, and held to the database a batch at a time: a checkpoint file of
	// millions of lines costs no more memory than a few. An error they yield is returned as it
	// is. Whoever supplies them checks what they are worth (a line's signature: CheckSigned),
	// and yields only copies of checkpoints committed before Verify was called: they are read
	// after its snapshot is taken, and one committed later is missing from it. A sealer's file
	// is read up to the size it had before then (the sealer appends a line after the commit).
	Witnessed iter.Seq2[Checkpoint, error]
	// Progress, if set, is called now and then with the report so far.
	Progress func(VerifyReport)
}

// VerifyReport is what Verify checked.
type VerifyReport struct {
	// Events is how many events were read and their chain links recomputed; Streams how many
	// of them began a stream (version 1).
	Events, Streams int64
	// Checkpoints is how many checkpoints' trees (and, with a key, signatures) were checked;
	// Signed says whether signatures were: a key was given, and there was a checkpoint.
	Checkpoints int64
	Signed      bool
	// Signers says which key signed which checkpoints whose signature was checked (from
	// FromCheckpoint's on), as runs of consecutive checkpoints signed by one key, in seq order.
	Signers []SignedRange
	// KeyUntil are the ranges the signatures were held to (VerifyOptions.KeyUntil).
	KeyUntil KeyRanges
	// Witnessed is how many checkpoints kept outside the database were found in it as kept.
	Witnessed int64
	// Subtrees is how many of the subtree roots the sealer stores (merkle_subtrees, the cache
	// proofs are built from) were recomputed from the log and found equal.
	Subtrees int64
	// LastCheckpoint is the seq of the last checkpoint checked, 0 for none; Unsealed is how many
	// events come after it, which no checkpoint covers yet.
	LastCheckpoint int64
	Unsealed       int64
	// FromCheckpoint is where the walk began (0: the start of the log).
	FromCheckpoint int64
	Elapsed        time.Duration
}

// SignedRange is a run of consecutive checkpoints, First to Last, signed by one key.
type SignedRange struct {
	KeyID       string
	First, Last int64
}

// addSigner counts cp's signature as checked with the key it names.
func (r *VerifyReport) addSigner(cp *Checkpoint) {
	if n := len(r.Signers); n > 0 && r.Signers[n-1].KeyID == cp.KeyID && r.Signers[n-1].Last == cp.Seq-1 {
		r.Signers[n-1].Last = cp.Seq
		return
	}
	r.Signers = append(r.Signers, SignedRange{KeyID: cp.KeyID, First: cp.Seq, Last: cp.Seq})
}

// A rate is computed only over at least MinRateElapsed and MinRateEvents: over less it says more
// about the clock's resolution than about the log.
const (
	MinRateElapsed = 100 * time.Millisecond
	MinRateEvents  = 1000
)

// Rate is how many events a second were verified; 0 until MinRateElapsed and MinRateEvents.
func (r VerifyReport) Rate() float64 {
	if r.Elapsed < MinRateElapsed || r.Events < MinRateEvents {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Mismatch is what Verify returns when the log or its checkpoints are not what they commit to:
// the first place, in the consumers' order, where they differ.
type Mismatch struct {
	// Position and Stream locate the event, when an event is at fault (Position 0 otherwise);
	// Version is its stream version.
	Position int64
	Stream   string
	Version  int64
	// Checkpoint is the seq of the checkpoint at fault, when one is.
	Checkpoint int64
	// Field names what does not match: hash, stream_version, tree_size, root, frontier,
	// signature, key_until, seq, witness, merkle_subtrees; for a proof (Proof.Verify), path;
	// for a history (VerifyHistory), also stream_id, version, previous_hash, events, proofs[i].
	Field  string
	Reason string
}

func (m *Mismatch) Error() string {
	var where string
	switch {
	case m.Position != 0 && m.Checkpoint != 0:
		where = fmt.Sprintf("checkpoint %d, at position %d (stream %s version %d)", m.Checkpoint, m.Position, m.Stream, m.Version)
	case m.Position != 0:
		where = fmt.Sprintf("position %d (stream %s version %d)", m.Position, m.Stream, m.Version)
	case m.Stream != "" && m.Version != 0:
		where = fmt.Sprintf("stream %s version %d", m.Stream, m.Version)
	case m.Stream != "":
		where = "stream " + m.Stream
	case m.Checkpoint != 0:
		where = fmt.Sprintf("checkpoint %d", m.Checkpoint)
	default:
		return fmt.Sprintf("%s: %s", m.Field, m.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", where, m.Field, m.Reason)
}

// verifyFetch is how many rows each FETCH reads from a cursor.
const verifyFetch = 1000

// eventsCursorSQL reads the log in the consumers' order, each event beside the stored hash of
// its stream's previous version: a chain link is checked from one row, so the walk keeps no
// state per stream, whatever the size of the log.
const eventsCursorSQL = `DECLARE ledger_events NO SCROLL CURSOR FOR
SELECT e.transaction_id::text::bigint, e.global_position, e.event_id, e.stream_id, e.stream_version,
       e.event_type, e.occurred_at, e.data::text, e.metadata::text, e.hash, p.hash
FROM event_log e
LEFT JOIN event_log p ON p.stream_id = e.stream_id AND p.stream_version = e.stream_version - 1
WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2::bigint)
ORDER BY e.transaction_id, e.global_position`

const checkpointColumns = `(SELECT id FROM log_identity), seq, tree_size, last_transaction_id::text::bigint, last_position, root, frontier, key_id, signature, created_at`

// Verify walks the log in the consumers' order and the checkpoints, in one read-only snapshot,
// and recomputes every event's hash from its contents and its stream's previous hash (and that
// versions run from 1 without a gap), and every checkpoint's tree size, root, frontier and
// signature. It returns a *Mismatch for the first difference it meets. Its memory does not grow
// with the log, nor with the witness: events and checkpoints are read through cursors, the
// witnessed checkpoints a batch at a time, and the tree is its frontier.
func Verify(ctx context.Context, pool *pgxpool.Pool, opts VerifyOptions) (VerifyReport, error) {
	started := time.Now()
	rep := VerifyReport{Signed: len(opts.Keys) > 0, KeyUntil: opts.KeyUntil, FromCheckpoint: opts.FromCheckpoint}
	if err := opts.KeyUntil.among(opts.Keys); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer conn.Release()
	// Read only and repeatable read: one snapshot for the whole walk, and no transaction id, so
	// however long it runs it holds no consumer of the log back.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// The checkpoints are read beside the events, on a connection of their own that shares the
	// events' snapshot: both are streamed, and neither waits for the other's rows.
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	cpConn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer cpConn.Release()
	cpTx, err := cpConn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	defer cpTx.Rollback(context.WithoutCancel(ctx))
	if _, err := cpTx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+snapshot+`'`); err != nil {
		return rep, fmt.Errorf("verify: share the snapshot: %w", err)
	}

	v := &verifier{tx: cpTx, opts: opts, rep: &rep, tree: &Tree{}}
	v.onSubtree = v.checkSubtree
	if err := v.checkWitnessed(ctx); err != nil {
		return rep, err
	}
	var fromXID uint64
	var fromPos int64
	if opts.FromCheckpoint != 0 {
		cps, err := v.readCheckpoints(ctx, `SELECT `+checkpointColumns+` FROM checkpoints WHERE seq = $1`, opts.FromCheckpoint)
		if err != nil {
			return rep, err
		}
		if len(cps) == 0 {
			return rep, fmt.Errorf("verify: there is no checkpoint %d", opts.FromCheckpoint)
		}
		cp := cps[0]
		if err := v.checkSignature(&cp); err != nil {
			return rep, err
		}
		t, err := NewTreeFromFrontier(uint64(cp.TreeSize), cp.Frontier)
		if err != nil {
			return rep, &Mismatch{Checkpoint: cp.Seq, Field: "frontier", Reason: err.Error()}
		}
		if t.Root() != cp.Root {
			return rep, &Mismatch{Checkpoint: cp.Seq, Field: "frontier", Reason: "its frontier does not hash to its signed root"}
		}
		v.tree, v.lastSeq, v.lastSize = t, cp.Seq, cp.TreeSize
		fromXID, fromPos = cp.LastTransactionID, cp.LastPosition
		rep.LastCheckpoint = cp.Seq
		if rep.Signed {
			rep.addSigner(&cp)
		}
	}
	// The plan is a plain index walk with one index probe per event: compiling it costs more
	// than it saves.
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if _, err := tx.Exec(ctx, eventsCursorSQL, fmt.Sprint(fromXID), fromPos); err != nil {
		return rep, fmt.Errorf("verify: read the log: %w", err)
	}
	if _, err := cpTx.Exec(ctx, `DECLARE ledger_checkpoints NO SCROLL CURSOR FOR
		SELECT `+checkpointColumns+` FROM checkpoints WHERE seq > $1 ORDER BY seq`, opts.FromCheckpoint); err != nil {
		return rep, fmt.Errorf("verify: read the checkpoints: %w", err)
	}
	if err := v.nextCheckpoint(ctx); err != nil {
		return rep, err
	}
	// The stored subtree roots, in the order the walk completes them: by last leaf, then level.
	if _, err := cpTx.Exec(ctx, `DECLARE ledger_subtrees NO SCROLL CURSOR FOR
		SELECT level, idx, root, last_transaction_id::text::bigint, last_position FROM merkle_subtrees
		WHERE (last_transaction_id, last_position) > ($1::text::xid8, $2)
		ORDER BY last_transaction_id, last_position, level, idx`, fmt.Sprint(fromXID), fromPos); err != nil {
		return rep, fmt.Errorf("verify: read the stored subtree roots: %w", err)
	}
	v.subCtx = ctx
	// The next batch is read while this one is checked: the database and the hashing overlap.
	fetchCtx, stopFetching := context.WithCancel(ctx)
	batches := make(chan eventBatch, 1)
	go fetchEvents(fetchCtx, tx, batches)
	defer func() {
		// The reader must be done with tx before it is rolled back: a connection serves one
		// query at a time.
		stopFetching()
		for range batches {
		}
	}()
	lastProgress := time.Now()
	for b := range batches {
		if b.err != nil {
			return rep, fmt.Errorf("verify: read the log: %w", b.err)
		}
		for i := range b.rows {
			if err := v.event(ctx, &b.rows[i]); err != nil {
				return rep, err
			}
		}
		rep.Elapsed = time.Since(started)
		if opts.Progress != nil && time.Since(lastProgress) >= 100*time.Millisecond {
			lastProgress = time.Now()
			opts.Progress(rep)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	if v.next != nil {
		return rep, &Mismatch{Checkpoint: v.next.Seq, Field: "tree_size", Reason: fmt.Sprintf(
			"it covers %d events up to position %d, but the log ends after %d", v.next.TreeSize, v.next.LastPosition, v.tree.Size())}
	}
	if v.subtreeErr != nil {
		return rep, v.subtreeErr
	}
	if err := v.unmetSubtree(ctx); err != nil {
		return rep, err
	}
	rep.Unsealed = int64(v.tree.Size()) - v.lastSize
	rep.Elapsed = time.Since(started)
	// A key with no checkpoint to check it against checked nothing.
	rep.Signed = rep.Signed && rep.LastCheckpoint != 0
	return rep, nil
}

// eventBatch is what one FETCH read, or why it failed.
type eventBatch struct {
	rows []eventRow
	err  error
}

// fetchEvents reads the events cursor into out, batch by batch, until the cursor or ctx ends,
// and closes out. The tx is used by nothing else meanwhile.
func fetchEvents(ctx context.Context, tx pgx.Tx, out chan<- eventBatch) {
	defer close(out)
	for {
		rows, err := tx.Query(ctx, fmt.Sprintf(`FETCH %d FROM ledger_events`, verifyFetch))
		b := eventBatch{err: err}
		if err == nil {
			b.rows = make([]eventRow, 0, verifyFetch)
			var r eventRow
			_, b.err = pgx.ForEachRow(rows, []any{&r.xid, &r.position, &r.e.ID, &r.e.Stream, &r.e.Version, &r.e.Type,
				&r.e.Occurred, &r.e.Data, &r.e.Metadata, &r.hash, &r.prev}, func() error {
				b.rows = append(b.rows, r)
				return nil
			})
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if b.err != nil || len(b.rows) < verifyFetch {
			return
		}
	}
}

// eventRow is one row of the events cursor.
type eventRow struct {
	xid        uint64
	position   int64
	e          ChainedEvent
	hash, prev []byte
}

// verifier is the state of one walk.
type verifier struct {
	tx   pgx.Tx // reads the checkpoints
	opts VerifyOptions
	rep  *VerifyReport
	tree *Tree
	// next is the next checkpoint to meet, nil when there is none.
	next              *Checkpoint
	lastSeq, lastSize int64
	// sub holds the stored subtree roots (merkle_subtrees, read through a cursor in the order
	// the walk completes them) not met yet; cur is the event being added; onSubtree checks the
	// subtrees it completes (bound once: a method value per event would allocate), and
	// subtreeErr is the first that did not match.
	sub        []subtree
	subDone    bool
	subCtx     context.Context
	cur        *eventRow
	onSubtree  func(level uint, index uint64, root Hash)
	subtreeErr error
}

// subtreeFetch is how many stored subtree roots are read at a time.
const subtreeFetch = 256

// nextStored returns the next stored subtree root not met yet, nil when there is none.
func (v *verifier) nextStored() (*subtree, error) {
	if len(v.sub) == 0 && !v.subDone {
		rows, err := v.tx.Query(v.subCtx, `FETCH `+fmt.Sprint(subtreeFetch)+` FROM ledger_subtrees`)
		if err != nil {
			return nil, fmt.Errorf("verify: read the stored subtree roots: %w", err)
		}
		var (
			level      int16
			index, pos int64
			root       []byte
			xid        uint64
		)
		_, err = pgx.ForEachRow(rows, []any{&level, &index, &root, &xid, &pos}, func() error {
			st := subtree{level: uint(level), index: uint64(index), xid: xid, pos: pos}
			if copy(st.root[:], root) != HashSize {
				return &Mismatch{Field: "merkle_subtrees", Reason: fmt.Sprintf("the stored root of level %d, index %d is %d bytes, not %d", level, index, len(root), HashSize)}
			}
			v.sub = append(v.sub, st)
			return nil
		})
		if err != nil {
			return nil, err
		}
		v.subDone = len(v.sub) < subtreeFetch
	}
	if len(v.sub) == 0 {
		return nil, nil
	}
	return &v.sub[0], nil
}

// checkSubtree compares a subtree the walk completed, whose last leaf is v.cur, with the stored
// roots: each stored root must be one the walk completes, at that last leaf, with that root.
// Subtrees not stored (a log sealed before they were) are not asked for.
func (v *verifier) checkSubtree(level uint, index uint64, root Hash) {
	if level < SubtreeLevel || v.subtreeErr != nil {
		return
	}
	r := v.cur
	fail := func(s *subtree, reason string) {
		v.subtreeErr = &Mismatch{Position: r.position, Stream: uuid.UUID(r.e.Stream).String(), Version: r.e.Version,
			Field: "merkle_subtrees", Reason: fmt.Sprintf("the stored root of leaves %d to %d (level %d, index %d) %s: "+
				"proofs built from it would not check out. The table is a cache, signed by nothing: the row was changed, "+
				"or left behind by a log rewritten after a deleted checkpoint (verify with --witness to tell)",
				s.index<<s.level, (s.index+1)<<s.level-1, s.level, s.index, reason)}
	}
	s, err := v.nextStored()
	switch {
	case err != nil:
		v.subtreeErr = err
	case s == nil:
	case after(r.xid, r.position, s.xid, s.pos) || (r.xid == s.xid && r.position == s.pos && s.level < level):
		// Passed without being met: the log's subtree of its level and index does not end where it says.
		fail(s, fmt.Sprintf("names (transaction %d, position %d) as its last leaf, where the log's subtree of that level and index does not end", s.xid, s.pos))
	case s.xid != r.xid || s.pos != r.position || s.level > level:
		// This subtree is not stored.
	case s.index != index:
		fail(s, fmt.Sprintf("ends at this event, which ends the log's subtree %d of that level", index))
	case s.root != root:
		fail(s, "is not the root of the log's leaves")
	default:
		v.rep.Subtrees++
		v.sub = v.sub[1:]
	}
}

// unmetSubtree names a stored subtree root left when the walk has ended: one of leaves the log
// does not have.
func (v *verifier) unmetSubtree(ctx context.Context) error {
	v.subCtx = ctx
	s, err := v.nextStored()
	if err != nil || s == nil {
		return err
	}
	where := "which the log does not reach"
	if v.cur != nil && !after(s.xid, s.pos, v.cur.xid, v.cur.position) {
		where = "where the log's subtree of that level and index does not end"
	}
	return &Mismatch{Field: "merkle_subtrees", Reason: fmt.Sprintf(
		"a root of leaves %d to %d (level %d, index %d) is stored, ending at (transaction %d, position %d), %s: the log has %d leaves. "+
			"No checkpoint covers the row: it was inserted, or left behind by a log rewritten after a deleted checkpoint (verify with --witness to tell)",
		s.index<<s.level, (s.index+1)<<s.level-1, s.level, s.index, s.xid, s.pos, where, v.tree.Size())}
}

// event checks one event's chain link, adds it to the tree, and checks the checkpoint it ends.
func (v *verifier) event(ctx context.Context, r *eventRow) error {
	mismatch := func(field, reason string) *Mismatch {
		return &Mismatch{Position: r.position, Stream: uuid.UUID(r.e.Stream).String(), Version: r.e.Version, Field: field, Reason: reason}
	}
	prev := Genesis
	switch {
	case r.e.Version < 1:
		return mismatch("stream_version", "versions start at 1")
	case r.e.Version == 1:
		v.rep.Streams++
	case r.prev == nil:
		return mismatch("stream_version", fmt.Sprintf("version %d of the stream is missing", r.e.Version-1))
	case len(r.prev) != HashSize:
		return mismatch("hash", fmt.Sprintf("version %d's hash is %d bytes, not %d", r.e.Version-1, len(r.prev), HashSize))
	default:
		copy(prev[:], r.prev)
	}
	if len(r.hash) != HashSize {
		return mismatch("hash", fmt.Sprintf("the stored hash is %d bytes, not %d", len(r.hash), HashSize))
	}
	var stored Hash
	copy(stored[:], r.hash)
	if EventHash(prev, &r.e) != stored {
		return mismatch("hash", "the stored hash does not match the event's contents (id, type, time, data, metadata) chained to the previous version's hash")
	}
	v.rep.Events++
	// A checkpoint whose last event has been passed without being met: that event is gone.
	for v.next != nil && after(r.xid, r.position, v.next.LastTransactionID, v.next.LastPosition) {
		m := mismatch("tree_size", fmt.Sprintf("its last event (transaction %d, position %d) is missing from the log; %d events come before it, it covers %d",
			v.next.LastTransactionID, v.next.LastPosition, v.tree.Size(), v.next.TreeSize))
		m.Checkpoint = v.next.Seq
		return m
	}
	v.cur = r
	v.tree.appendReporting(LeafHash(r.xid, r.position, stored), v.onSubtree)
	if v.subtreeErr != nil {
		// A stored subtree that does not match is the cache's fault only if the log itself
		// checks out: a changed log also changes the subtrees over it, and the checkpoint that
		// covers them (every stored subtree ends at or before one) names the change for what it
		// is. So a mismatch waits for that checkpoint, or the end of the walk; an error reading
		// the rows does not wait.
		var m *Mismatch
		if !errors.As(v.subtreeErr, &m) {
			return v.subtreeErr
		}
	}
	if v.next != nil && r.xid == v.next.LastTransactionID && r.position == v.next.LastPosition {
		cp := v.next
		fail := func(field, reason string) error {
			m := mismatch(field, reason)
			m.Checkpoint = cp.Seq
			return m
		}
		if int64(v.tree.Size()) != cp.TreeSize {
			return fail("tree_size", fmt.Sprintf("the log has %d events up to here, the checkpoint covers %d", v.tree.Size(), cp.TreeSize))
		}
		if v.tree.Root() != cp.Root {
			return fail("root", "the Merkle root of the log up to here is not the checkpoint's root")
		}
		if !bytes.Equal(v.tree.Frontier(), cp.Frontier) {
			return fail("frontier", "the checkpoint's frontier is not the tree's")
		}
		if v.subtreeErr != nil {
			return v.subtreeErr // the log up to here is the checkpoint's: the stored root is wrong
		}
		v.rep.Checkpoints++
		if v.rep.Signed {
			v.rep.addSigner(cp)
		}
		v.rep.LastCheckpoint, v.lastSeq, v.lastSize = cp.Seq, cp.Seq, cp.TreeSize
		return v.nextCheckpoint(ctx)
	}
	return nil
}

// after says whether (xid, pos) comes after (cxid, cpos) in the consumers' order.
func after(xid uint64, pos int64, cxid uint64, cpos int64) bool {
	return xid > cxid || (xid == cxid && pos > cpos)
}

// nextCheckpoint reads the next checkpoint and checks what it says of itself: its seq follows,
// it covers more than the one before, and its signature.
func (v *verifier) nextCheckpoint(ctx context.Context) error {
	cps, err := v.readCheckpoints(ctx, `FETCH 1 FROM ledger_checkpoints`)
	if err != nil {
		return err
	}
	if len(cps) == 0 {
		v.next = nil
		return nil
	}
	cp := &cps[0]
	if cp.Seq != v.lastSeq+1 {
		return &Mismatch{Checkpoint: cp.Seq, Field: "seq", Reason: fmt.Sprintf("checkpoint %d is missing", v.lastSeq+1)}
	}
	if cp.TreeSize <= v.lastSize {
		return &Mismatch{Checkpoint: cp.Seq, Field: "tree_size", Reason: fmt.Sprintf("it covers %d events, no more than checkpoint %d (%d)", cp.TreeSize, v.lastSeq, v.lastSize)}
	}
	if err := v.checkSignature(cp); err != nil {
		return err
	}
	v.next = cp
	return nil
}

// witnessBatch is how many witnessed checkpoints are looked up in the database at a time.
const witnessBatch = 1000

// checkWitnessed checks that every witnessed checkpoint is in the database as witnessed, a batch
// at a time. The walk then checks the database's checkpoints against the log.
func (v *verifier) checkWitnessed(ctx context.Context) error {
	if v.opts.Witnessed == nil {
		return nil
	}
	batch := make([]Checkpoint, 0, witnessBatch)
	for w, err := range v.opts.Witnessed {
		if err != nil {
			return err
		}
		w.Frontier = nil // not compared: the root is
		if batch = append(batch, w); len(batch) == witnessBatch {
			if err := v.checkWitnessedBatch(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return v.checkWitnessedBatch(ctx, batch)
}

func (v *verifier) checkWitnessedBatch(ctx context.Context, batch []Checkpoint) error {
	if len(batch) == 0 {
		return nil
	}
	seqs := make([]int64, len(batch))
	for i, w := range batch {
		seqs[i] = w.Seq
	}
	rows, err := v.tx.Query(ctx, `SELECT (SELECT id FROM log_identity), seq, tree_size, root FROM checkpoints WHERE seq = ANY($1)`, seqs)
	if err != nil {
		return fmt.Errorf("verify: read the witnessed checkpoints: %w", err)
	}
	bySeq := make(map[int64]Checkpoint, len(batch))
	var (
		cp   Checkpoint
		root []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&cp.LogID, &cp.Seq, &cp.TreeSize, &root}, func() error {
		if len(root) != HashSize {
			return &Mismatch{Checkpoint: cp.Seq, Field: "root", Reason: fmt.Sprintf("%d bytes, not %d", len(root), HashSize)}
		}
		copy(cp.Root[:], root)
		bySeq[cp.Seq] = cp
		return nil
	})
	var mm *Mismatch
	switch {
	case errors.As(err, &mm):
		return mm
	case err != nil:
		return fmt.Errorf("verify: read the witnessed checkpoints: %w", err)
	}
	for _, w := range batch {
		db, ok := bySeq[w.Seq]
		switch {
		case !ok:
			return &Mismatch{Checkpoint: w.Seq, Field: "witness", Reason: "the witnessed checkpoint is missing from the database"}
		case db.Root != w.Root:
			return &Mismatch{Checkpoint: w.Seq, Field: "witness", Reason: fmt.Sprintf("the database's root %x is not the witnessed %x", db.Root[:], w.Root[:])}
		case w.LogID != [16]byte{} && db.LogID != w.LogID:
			return &Mismatch{Checkpoint: w.Seq, Field: "witness", Reason: fmt.Sprintf("the witnessed checkpoint is of log %s, the database is log %s", uuid.UUID(w.LogID), uuid.UUID(db.LogID))}
		case w.TreeSize != 0 && db.TreeSize != w.TreeSize:
			return &Mismatch{Checkpoint: w.Seq, Field: "witness", Reason: fmt.Sprintf("the database's tree size %d is not the witnessed %d", db.TreeSize, w.TreeSize)}
		}
		v.rep.Witnessed++
	}
	return nil
}

func (v *verifier) checkSignature(cp *Checkpoint) error {
	if len(v.opts.Keys) == 0 {
		return nil
	}
	return CheckSigned(cp, v.opts.Keys, v.opts.KeyUntil)
}

func (v *verifier) readCheckpoints(ctx context.Context, sql string, args ...any) ([]Checkpoint, error) {
	rows, err := v.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("verify: read the checkpoints: %w", err)
	}
	cps, err := pgx.CollectRows(rows, scanCheckpoint)
	if err != nil {
		var mm *Mismatch
		if errors.As(err, &mm) {
			return nil, mm
		}
		return nil, fmt.Errorf("verify: read the checkpoints: %w", err)
	}
	return cps, nil
}

// scanCheckpoint reads a row of checkpointColumns.
func scanCheckpoint(row pgx.CollectableRow) (Checkpoint, error) {
	var cp Checkpoint
	var root []byte
	if err := row.Scan(&cp.LogID, &cp.Seq, &cp.TreeSize, &cp.LastTransactionID, &cp.LastPosition, &root, &cp.Frontier,
		&cp.KeyID, &cp.Signature, &cp.CreatedAt); err != nil {
		return cp, err
	}
	if len(root) != HashSize {
		return cp, &Mismatch{Checkpoint: cp.Seq, Field: "root", Reason: fmt.Sprintf("%d bytes, not %d", len(root), HashSize)}
	}
	copy(cp.Root[:], root)
	return cp, nil
}
