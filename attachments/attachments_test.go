package attachments_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/heraldtest"
)

// TestPurgeDeletesOnlyUnusedFiles: the sweep deletes the files no send used within the
// retention time, and keeps those used since, however old they are; a file used again is marked
// used now, and a purged file stored again comes back.
func TestPurgeDeletesOnlyUnusedFiles(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	oldUnused, oldReused, fresh := attachments.NewFile([]byte("old, unused")), attachments.NewFile([]byte("old, used again")), attachments.NewFile([]byte("fresh"))
	if err := attachments.Put(ctx, db.Pool, []attachments.File{oldUnused, oldReused, fresh, fresh}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE attachments SET created_at = now() - interval '40 days', last_used_at = now() - interval '31 days'
		WHERE sha256 = ANY($1::bytea[])`, [][]byte{oldUnused.SHA256[:], oldReused.SHA256[:]}); err != nil {
		t.Fatal(err)
	}
	// A send of the same bytes marks the row used, and stores nothing new.
	if err := attachments.Put(ctx, db.Pool, []attachments.File{oldReused}, nil); err != nil {
		t.Fatal(err)
	}

	store := attachments.New(db.Pool)
	n, err := store.Purge(ctx, 30*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Purge: %d, %v; want 1 file deleted", n, err)
	}
	got, err := store.Load(ctx, []string{oldUnused.Hex(), oldReused.Hex(), fresh.Hex()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{oldReused.Hex(): oldReused.Data, fresh.Hex(): fresh.Data}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files after the purge (-want +got):\n%s", diff)
	}

	if err := attachments.Put(ctx, db.Pool, []attachments.File{oldUnused}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.Load(ctx, []string{oldUnused.Hex()}); len(got) != 1 {
		t.Errorf("a purged file sent again was not stored again")
	}
}

// TestLoadRefusesCorruptFiles: bytes that do not match their hash are never handed out.
func TestLoadRefusesCorruptFiles(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	f := attachments.NewFile([]byte("the real bytes"))
	if err := attachments.Put(ctx, db.Pool, []attachments.File{f}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE attachments SET data = 'other bytes'`); err != nil {
		t.Fatal(err)
	}
	if got, err := attachments.New(db.Pool).Load(ctx, []string{f.Hex()}); err == nil {
		t.Errorf("Load of a file whose bytes changed: %q, want an error", got)
	}
}
