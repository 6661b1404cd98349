// Package attachments owns the files sent with emails: stored once each in PostgreSQL, addressed
// by the SHA-256 of their bytes, and deleted when no send has used them for the retention time.
// The event log names a file by its hash and never holds its bytes.
package attachments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultRetention is how long a file no send uses is kept.
const DefaultRetention = 30 * 24 * time.Hour

// File is a file's bytes with their hash.
type File struct {
	SHA256 [sha256.Size]byte
	Data   []byte
}

// NewFile returns data as a File.
func NewFile(data []byte) File { return File{SHA256: sha256.Sum256(data), Data: data} }

// Hex is the file's hash as the log writes it: lower-case hex.
func (f File) Hex() string { return hex.EncodeToString(f.SHA256[:]) }

// Querier runs statements: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// upsert stores each file that is not stored yet, and marks used each that is: used now, or
// at $3 when that is later (a scheduled send uses its files when it is sent), keeping the
// later of that and the time a send marked before. The rows are written in hash order, so that
// two sends sharing files cannot deadlock.
const upsert = `INSERT INTO attachments (sha256, size, data, last_used_at)
	SELECT h, length(d), d, greatest(now(), $3::timestamptz) FROM unnest($1::bytea[], $2::bytea[]) AS f(h, d)
	ON CONFLICT (sha256) DO UPDATE SET last_used_at = greatest(attachments.last_used_at, excluded.last_used_at)`

// args are upsert's arguments for files: each hash once (a statement may not update a row
// twice), in order.
func args(files []File) ([][]byte, [][]byte) {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return bytes.Compare(a.SHA256[:], b.SHA256[:]) })
	sorted = slices.CompactFunc(sorted, func(a, b File) bool { return a.SHA256 == b.SHA256 })
	hashes, data := make([][]byte, len(sorted)), make([][]byte, len(sorted))
	for i, f := range sorted {
		hashes[i], data[i] = f.SHA256[:], f.Data
	}
	return hashes, data
}

// Put stores files through db (the accepting transaction), once each, used now; for a send
// scheduled at sendAt (nil: sent now), used at sendAt, so that the retention counts from the
// send and not from its acceptance.
func Put(ctx context.Context, db Querier, files []File, sendAt *time.Time) error {
	if len(files) == 0 {
		return nil
	}
	hashes, data := args(files)
	if _, err := db.Exec(ctx, upsert, hashes, data, sendAt); err != nil {
		return fmt.Errorf("store attachments: %w", err)
	}
	return nil
}

// QueuePut queues Put in b, for an accept written in one round trip.
func QueuePut(b *pgx.Batch, files []File, sendAt *time.Time) {
	if len(files) == 0 {
		return
	}
	hashes, data := args(files)
	b.Queue(upsert, hashes, data, sendAt)
}

// Store reads and sweeps the stored files.
type Store struct{ db Querier }

// New returns the store of the files in db.
func New(db Querier) *Store { return &Store{db: db} }

// Load returns the bytes of the files hashes names (lower-case hex), by hash, in one query. A
// file that is not stored (any more) is absent from the answer; a stored file whose bytes do not
// match its hash is an error.
func (s *Store) Load(ctx context.Context, hashes []string) (map[string][]byte, error) {
	keys := make([][]byte, 0, len(hashes))
	for _, h := range hashes {
		k, err := hex.DecodeString(h)
		if err != nil || len(k) != sha256.Size {
			return nil, fmt.Errorf("load attachments: %q is not a SHA-256 in hex", h)
		}
		keys = append(keys, k)
	}
	rows, err := s.db.Query(ctx, `SELECT sha256, data FROM attachments WHERE sha256 = ANY($1::bytea[])`, keys)
	if err != nil {
		return nil, fmt.Errorf("load attachments: %w", err)
	}
	out := make(map[string][]byte, len(keys))
	var key, data []byte
	_, err = pgx.ForEachRow(rows, []any{&key, &data}, func() error {
		if sum := sha256.Sum256(data); !bytes.Equal(sum[:], key) {
			return fmt.Errorf("attachment %x: stored bytes do not match their hash", key)
		}
		out[hex.EncodeToString(key)] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load attachments: %w", err)
	}
	return out, nil
}

// Purge deletes the files no send has used for retention, and returns how many (a scheduled
// send's files count as used at its send_at). A send that
// uses a file while it is being purged keeps it: its upsert either marks the row used first,
// which the delete then skips, or stores it anew after the delete.
func (s *Store) Purge(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM attachments WHERE last_used_at < now() - $1::interval`, retention.String())
	if err != nil {
		return 0, fmt.Errorf("purge attachments: %w", err)
	}
	return tag.RowsAffected(), nil
}
