package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/jackc/pgx/v5"
)

// The sealer stores, in merkle_subtrees, the root of every complete aligned perfect subtree of
// 2^SubtreeLevel leaves or more, with the place in the log of its last leaf. An inclusion proof
// then takes the roots beside its path from there, and hashes leaves only inside the 2^SubtreeLevel
// block of its event and the unfinished block at the checkpoint's end: O(log n) rows and at most
// two blocks of leaves, instead of every leaf up to the checkpoint.
//
// The rows are a cache: nothing signs them. A proof built from a wrong one does not lead to the
// checkpoint's signed root; prove checks every proof before it returns it, and proves from the
// leaves instead when one built from the cache does not check out.

// SubtreeLevel is the smallest subtree the sealer stores the root of: 2^10 leaves.
const SubtreeLevel = 10

const blockSize = uint64(1) << SubtreeLevel

// subtree is a stored subtree root: level, index (leaves [index*2^level, (index+1)*2^level)), and
// the place in the log of its last leaf.
type subtree struct {
	level uint
	index uint64
	root  Hash
	xid   uint64
	pos   int64
}

// subtreeCollector gathers the subtrees of SubtreeLevel or more that appended leaves complete.
type subtreeCollector struct {
	nodes    []subtree
	xid      uint64
	position int64
}

// add appends leaf, the log's event at (xid, pos), to tree and gathers what it completes.
func (c *subtreeCollector) add(tree *Tree, xid uint64, pos int64, leaf Hash) {
	c.xid, c.position = xid, pos
	tree.appendReporting(leaf, c.completed)
}

func (c *subtreeCollector) completed(level uint, index uint64, root Hash) {
	if level >= SubtreeLevel {
		c.nodes = append(c.nodes, subtree{level: level, index: index, root: root, xid: c.xid, pos: c.position})
	}
}

// store appends the gathered subtrees to merkle_subtrees (those already there stay as they are).
func (c *subtreeCollector) store(ctx context.Context, tx pgx.Tx) error {
	if len(c.nodes) == 0 {
		return nil
	}
	levels, indexes, roots := make([]int16, len(c.nodes)), make([]int64, len(c.nodes)), make([][]byte, len(c.nodes))
	xids, positions := make([]string, len(c.nodes)), make([]int64, len(c.nodes))
	for i, n := range c.nodes {
		levels[i], indexes[i], roots[i] = int16(n.level), int64(n.index), n.root[:]
		xids[i], positions[i] = fmt.Sprint(n.xid), n.pos
	}
	_, err := tx.Exec(ctx, `INSERT INTO merkle_subtrees (level, idx, root, last_transaction_id, last_position)
		SELECT l, i, r, x::xid8, p FROM unnest($1::smallint[], $2::bigint[], $3::bytea[], $4::text[], $5::bigint[]) AS u(l, i, r, x, p)
		ON CONFLICT DO NOTHING`, levels, indexes, roots, xids, positions)
	if err != nil {
		return fmt.Errorf("store the tree's subtree roots: %w", err)
	}
	return nil
}

// errNotCheckpointed is returned by backfillSubtrees when the log's leaves up to a checkpoint do
// not hash to its root.
var errNotCheckpointed = errors.New("the log does not match its checkpoint")

// backfillSubtrees stores the subtree roots of the tree of checkpoint cp when merkle_subtrees
// lacks some of its blocks (a log sealed before the table, or by a sealer that did not write
// it): one pass over its leaves, once. The rebuilt root must be cp's, or nothing is stored
// (errNotCheckpointed).
func backfillSubtrees(ctx context.Context, tx pgx.Tx, cp *Checkpoint) error {
	blocks := uint64(cp.TreeSize) >> SubtreeLevel
	if blocks == 0 {
		return nil
	}
	var stored uint64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM merkle_subtrees WHERE level = $1 AND idx < $2`,
		SubtreeLevel, int64(blocks)).Scan(&stored); err != nil {
		return fmt.Errorf("count the stored subtree roots: %w", err)
	}
	if stored == blocks {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT transaction_id::text::bigint, global_position, hash FROM event_log
		ORDER BY transaction_id, global_position LIMIT $1`, cp.TreeSize)
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	var (
		tree Tree
		c    subtreeCollector
		xid  uint64
		pos  int64
		h    Hash
	)
	if _, err := pgx.ForEachRow(rows, []any{&xid, &pos, (*rootScanner)(&h)}, func() error {
		c.add(&tree, xid, pos, LeafHash(xid, pos, h))
		return nil
	}); err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	if tree.Size() != uint64(cp.TreeSize) || tree.Root() != cp.Root {
		return fmt.Errorf("checkpoint %d: %w", cp.Seq, errNotCheckpointed)
	}
	return c.store(ctx, tx)
}

// errNotCached says the stored subtrees cannot give a proof: prove reads the leaves instead.
var errNotCached = errors.New("the stored subtree roots do not cover the proof")

// subtreeProver builds inclusion proofs in a tree of size leaves from the stored subtree roots
// and the leaves of a few blocks, read in tx.
type subtreeProver struct {
	tx     pgx.Tx
	size   uint64
	nodes  map[[2]uint64]*subtree
	blocks map[uint64][]Hash
}

func newSubtreeProver(tx pgx.Tx, size uint64) *subtreeProver {
	return &subtreeProver{tx: tx, size: size, nodes: map[[2]uint64]*subtree{}, blocks: map[uint64][]Hash{}}
}

// node returns the stored root of subtree (level, index), nil when there is none.
func (s *subtreeProver) node(ctx context.Context, level uint, index uint64) (*subtree, error) {
	key := [2]uint64{uint64(level), index}
	if n, ok := s.nodes[key]; ok {
		return n, nil
	}
	n := &subtree{level: level, index: index}
	err := s.tx.QueryRow(ctx, `SELECT root, last_transaction_id::text::bigint, last_position FROM merkle_subtrees WHERE level = $1 AND idx = $2`,
		int16(level), int64(index)).Scan((*rootScanner)(&n.root), &n.xid, &n.pos)
	if errors.Is(err, pgx.ErrNoRows) {
		n = nil
	} else if err != nil {
		return nil, fmt.Errorf("read subtree %d/%d: %w", level, index, err)
	}
	s.nodes[key] = n
	return n, nil
}

// blockStart returns the place in the log after which block b's leaves begin: the last leaf of
// block b-1 (first says block 0 begins the log).
func (s *subtreeProver) blockStart(ctx context.Context, b uint64) (xid uint64, pos int64, first bool, err error) {
	if b == 0 {
		return 0, 0, true, nil
	}
	prev, err := s.node(ctx, SubtreeLevel, b-1)
	if err != nil {
		return 0, 0, false, err
	}
	if prev == nil {
		return 0, 0, false, errNotCached
	}
	return prev.xid, prev.pos, false, nil
}

// afterStart is the condition "after the block's start" on event_log, with the start as $1, $2.
func afterStart(first bool) string {
	if first {
		return `$1::text IS NOT NULL AND $2::bigint IS NOT NULL`
	}
	return `(transaction_id, global_position) > ($1::text::xid8, $2::bigint)`
}

// leaves returns the leaves of block b the tree holds.
func (s *subtreeProver) leaves(ctx context.Context, b uint64) ([]Hash, error) {
	if l, ok := s.blocks[b]; ok {
		return l, nil
	}
	xid, pos, first, err := s.blockStart(ctx, b)
	if err != nil {
		return nil, err
	}
	want := min(blockSize, s.size-b*blockSize)
	// ORDER BY names the table's columns, not the bigint the select list casts one to, so that
	// the index gives the order and the read stops after the block.
	rows, err := s.tx.Query(ctx, `SELECT transaction_id::text::bigint, global_position, hash FROM event_log
		WHERE `+afterStart(first)+` ORDER BY event_log.transaction_id, event_log.global_position LIMIT $3`, fmt.Sprint(xid), pos, int64(want))
	if err != nil {
		return nil, fmt.Errorf("read block %d: %w", b, err)
	}
	l := make([]Hash, 0, want)
	var h Hash
	if _, err := pgx.ForEachRow(rows, []any{&xid, &pos, (*rootScanner)(&h)}, func() error {
		l = append(l, LeafHash(xid, pos, h))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read block %d: %w", b, err)
	}
	if uint64(len(l)) != want {
		return nil, errNotCached
	}
	s.blocks[b] = l
	return l, nil
}

// leafIndex returns the index in the tree of the event at (xid, pos), counting only inside its
// block.
func (s *subtreeProver) leafIndex(ctx context.Context, xid uint64, pos int64) (uint64, error) {
	b := s.size >> SubtreeLevel // the unfinished block at the tree's end, unless a stored one holds the event
	var found int64
	err := s.tx.QueryRow(ctx, `SELECT idx FROM merkle_subtrees WHERE level = $1 AND (last_transaction_id, last_position) >= ($2::text::xid8, $3::bigint)
		ORDER BY level, last_transaction_id, last_position LIMIT 1`, SubtreeLevel, fmt.Sprint(xid), pos).Scan(&found)
	switch {
	case err == nil && uint64(found) < b:
		b = uint64(found)
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("find the event's block: %w", err)
	}
	sx, sp, first, err := s.blockStart(ctx, b)
	if err != nil {
		return 0, err
	}
	var before uint64
	if err := s.tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT FROM event_log WHERE `+afterStart(first)+`
			AND (transaction_id, global_position) < ($3::text::xid8, $4::bigint)
			ORDER BY transaction_id, global_position LIMIT $5) b`,
		fmt.Sprint(sx), sp, fmt.Sprint(xid), pos, int64(blockSize)).Scan(&before); err != nil {
		return 0, fmt.Errorf("count the event's block: %w", err)
	}
	if before == blockSize || b*blockSize+before >= s.size {
		return 0, errNotCached
	}
	return b*blockSize + before, nil
}

// hash returns the root of the tree's leaves [lo, hi), split as RFC 6962 splits them.
func (s *subtreeProver) hash(ctx context.Context, lo, hi uint64) (Hash, error) {
	n := hi - lo
	if n >= blockSize && n&(n-1) == 0 && lo%n == 0 {
		level := uint(bits.TrailingZeros64(n))
		stored, err := s.node(ctx, level, lo>>level)
		if err != nil || stored != nil {
			if stored == nil {
				return Hash{}, err
			}
			return stored.root, nil
		}
	}
	if b := lo / blockSize; (hi-1)/blockSize == b {
		l, err := s.leaves(ctx, b)
		if err != nil {
			return Hash{}, err
		}
		var t Tree
		for _, leaf := range l[lo-b*blockSize : hi-b*blockSize] {
			t.Append(leaf)
		}
		return t.Root(), nil
	}
	k := uint64(1) << (bits.Len64(n-1) - 1)
	left, err := s.hash(ctx, lo, lo+k)
	if err != nil {
		return Hash{}, err
	}
	right, err := s.hash(ctx, lo+k, hi)
	if err != nil {
		return Hash{}, err
	}
	return NodeHash(left, right), nil
}

// prove returns the leaf index and inclusion path of the event at (xid, pos), or errNotCached.
func (s *subtreeProver) prove(ctx context.Context, xid uint64, pos int64) (uint64, []Hash, error) {
	if s.size < blockSize {
		return 0, nil, errNotCached
	}
	m, err := s.leafIndex(ctx, xid, pos)
	if err != nil {
		return 0, nil, err
	}
	ranges := proofRanges(m, s.size)
	path := make([]Hash, len(ranges))
	for i, r := range ranges {
		if path[i], err = s.hash(ctx, r[0], r[1]); err != nil {
			return 0, nil, err
		}
	}
	return m, path, nil
}
