package migrations_test

import (
	"testing"

	"github.com/herald-notify/herald/heraldtest"
)

// Events' data is compressed with lz4 on a server that has it (PostgreSQL 14 and later, built
// with lz4, as Debian's and the official images are).
func TestEventDataCompressedWithLZ4(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	var method string
	if err := db.Pool.QueryRow(t.Context(), `SELECT attcompression::text FROM pg_attribute
		WHERE attrelid = 'event_log'::regclass AND attname = 'data'`).Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "l" {
		t.Errorf("event_log.data compression is %q, want l (lz4)", method)
	}
}
