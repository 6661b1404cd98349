package ledger

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ProveEventFrom proves eventID against checkpoint seq with its path taken from every leaf
// (leaves) or from the stored subtree roots alone, unchecked (not leaves): what Prove chooses
// between.
func ProveEventFrom(ctx context.Context, pool *pgxpool.Pool, eventID string, seq int64, leaves bool) (*Proof, error) {
	from := fromSubtreesOnly
	if leaves {
		from = fromLeaves
	}
	proofs, _, err := prove(ctx, pool, `e.event_id = $1::uuid`, eventID, seq, from)
	if err != nil || len(proofs) == 0 {
		return nil, err
	}
	return proofs[0], nil
}

// ProveStreamFrom is ProveEventFrom for the events of a stream the latest checkpoint covers.
func ProveStreamFrom(ctx context.Context, pool *pgxpool.Pool, stream string, leaves bool) ([]*Proof, error) {
	from := fromSubtreesOnly
	if leaves {
		from = fromLeaves
	}
	proofs, _, err := prove(ctx, pool, `e.stream_id = $1::uuid`, stream, 0, from)
	return proofs, err
}
