package ledger_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

func chained(typ, data, meta string, version int64) *ledger.ChainedEvent {
	return &ledger.ChainedEvent{
		ID:       uuid.MustParse("0190f3b2-7c1e-7a4b-9d2e-5f6a7b8c9d0e"),
		Stream:   uuid.MustParse("0190f3b2-7c1e-7a4b-9d2e-000000000001"),
		Version:  version,
		Type:     typ,
		Occurred: time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC),
		Data:     []byte(data), Metadata: []byte(meta),
	}
}

// The encoding is the documented one, byte for byte: computed here by hand from the layout.
func TestEventHashEncoding(t *testing.T) {
	e := chained("NotificationSent", `{"a": 1}`, `{}`, 2)
	prev := sha256.Sum256([]byte("prev"))
	var b []byte
	b = append(b, prev[:]...)
	b = append(b, e.ID[:]...)
	b = append(b, e.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, 2)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Occurred.UnixMicro()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	b = append(b, e.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Metadata)))
	b = append(b, e.Metadata...)
	if got, want := ledger.EventHash(prev, e), sha256.Sum256(b); got != want {
		t.Errorf("EventHash %x, want %x", got, want)
	}
}

// Moving bytes from one field to the next changes the hash: the lengths keep fields apart.
func TestEventHashIsUnambiguous(t *testing.T) {
	pairs := [][2]*ledger.ChainedEvent{
		{chained("A", `{"x":1}`, `{}`, 1), chained("A{", `"x":1}`, `{}`, 1)},
		{chained("A", `{}`, `{}{}`, 1), chained("A", `{}{}`, `{}`, 1)},
		{chained("A", `{}`, `{}`, 1), chained("A", `{}`, `{}`, 2)},
	}
	for _, p := range pairs {
		if ledger.EventHash(ledger.Genesis, p[0]) == ledger.EventHash(ledger.Genesis, p[1]) {
			t.Errorf("%+v and %+v hash alike", p[0], p[1])
		}
	}
	later := chained("A", `{}`, `{}`, 1)
	later.Occurred = later.Occurred.Add(time.Microsecond)
	if ledger.EventHash(ledger.Genesis, later) == ledger.EventHash(ledger.Genesis, chained("A", `{}`, `{}`, 1)) {
		t.Error("a microsecond later hashes alike")
	}
}

// The database's event_log_hash and EventHash agree, for text beyond ASCII, nested JSON and
// times before the epoch: the verifier recomputes what the trigger wrote.
func TestDatabaseHashIsEventHash(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	for _, e := range []*ledger.ChainedEvent{
		chained("NotificationQueued", `{"content": "héllo ✉ \"q\"", "n": [1, 2.5, {"k": null}]}`, `{"actor": "ops"}`, 1),
		chained("X", `{}`, `{}`, 7),
	} {
		if e.Version == 7 {
			e.Occurred = time.Date(1960, 1, 1, 0, 0, 0, 1000, time.UTC)
		}
		prev := sha256.Sum256([]byte(e.Type))
		var got []byte
		// The JSON goes through jsonb and back, as the log stores it.
		var data, meta string
		if err := db.Pool.QueryRow(ctx, `SELECT $1::jsonb::text, $2::jsonb::text`, string(e.Data), string(e.Metadata)).Scan(&data, &meta); err != nil {
			t.Fatal(err)
		}
		e.Data, e.Metadata = []byte(data), []byte(meta)
		if err := db.Pool.QueryRow(ctx, `SELECT event_log_hash($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)`,
			prev[:], uuid.UUID(e.ID), uuid.UUID(e.Stream), e.Version, e.Type, e.Occurred, data, meta).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := ledger.EventHash(prev, e); hex.EncodeToString(got) != hex.EncodeToString(want[:]) {
			t.Errorf("%s: database %x, Go %x", e.Type, got, want)
		}
	}
}
