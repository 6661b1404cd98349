// Package ledger owns what makes the event log tamper-evident: the hash chain through each
// stream (computed by the database on every append, see migrations/00020_event_log_chain.sql,
// and recomputed here), the Merkle tree over the whole log in the order its consumers read it,
// the signed checkpoints that commit to that tree, the sealer that writes them (and the roots of
// the tree's subtrees it stores for proofs, a cache), the inclusion proofs, and the verifier
// that walks the log and the checkpoints and names the first thing that does not match.
//
// What it proves and what it cannot is in docs/architecture.md, "A tamper-evident log".
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"
)

// HashSize is the size of every hash here: SHA-256.
const HashSize = sha256.Size

// Hash is a SHA-256 digest.
type Hash [HashSize]byte

// Genesis is the previous hash of every stream's version 1.
var Genesis Hash

// ChainedEvent is what an event's hash covers, as the database stores it.
type ChainedEvent struct {
	ID       [16]byte // event_id
	Stream   [16]byte // stream_id
	Version  int64
	Type     string
	Occurred time.Time
	// Data and Metadata are the jsonb columns' text, as PostgreSQL renders them (data::text).
	Data, Metadata []byte
}

// EventHash returns the hash of e chained to prev, in the encoding event_log_hash uses in the
// database: prev, then the fixed-width fields as they are, and each variable-width field after
// its length (4 bytes, big-endian); integers big-endian; the time in microseconds since the Unix
// epoch. No two different events encode alike.
func EventHash(prev Hash, e *ChainedEvent) Hash {
	h := sha256.New()
	writeEvent(h, prev, e)
	var out Hash
	h.Sum(out[:0])
	return out
}

// writeEvent writes the canonical encoding of e after prev to h.
func writeEvent(h hash.Hash, prev Hash, e *ChainedEvent) {
	var buf [8]byte
	h.Write(prev[:])
	h.Write(e.ID[:])
	h.Write(e.Stream[:])
	binary.BigEndian.PutUint64(buf[:], uint64(e.Version))
	h.Write(buf[:8])
	writeField(h, []byte(e.Type))
	binary.BigEndian.PutUint64(buf[:], uint64(e.Occurred.UnixMicro()))
	h.Write(buf[:8])
	writeField(h, e.Data)
	writeField(h, e.Metadata)
}

func writeField(h hash.Hash, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	h.Write(n[:])
	h.Write(b)
}
