package ledger_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// subtreeLog is a log of generated events sealed in checkpoints of chosen sizes.
type subtreeLog struct {
	db     *heraldtest.Database
	key    ed25519.PrivateKey
	events int
	ids    []string // in the log's order
}

func newSubtreeLog(t *testing.T) *subtreeLog {
	l := &subtreeLog{db: heraldtest.NewDatabase(t)}
	_, l.key, _ = ed25519.GenerateKey(nil)
	return l
}

// grow appends 3*streams events and waits until the log's consumers see them.
func (l *subtreeLog) grow(t *testing.T, streams int) {
	t.Helper()
	if _, err := l.db.Pool.Exec(t.Context(), insertStreamsSQL, streams); err != nil {
		t.Fatal(err)
	}
	l.events += 3 * streams
	heraldtest.WaitLogVisible(t, l.db, l.events)
	rows, err := l.db.Pool.Query(t.Context(), `SELECT event_id::text FROM event_log ORDER BY transaction_id, global_position`)
	if err != nil {
		t.Fatal(err)
	}
	l.ids = l.ids[:0]
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		l.ids = append(l.ids, id)
	}
	if err := rows.Err(); err != nil || len(l.ids) != l.events {
		t.Fatalf("%d events read (%v), want %d", len(l.ids), err, l.events)
	}
}

// seal writes one checkpoint of at most batch new events and returns its tree size.
func (l *subtreeLog) seal(t *testing.T, batch int) ledger.Checkpoint {
	t.Helper()
	cp, _, err := ledger.NewSealer(l.db.Pool, l.key).WithBatch(batch).Seal(t.Context())
	if err != nil || cp == nil {
		t.Fatalf("seal: %v, %v", cp, err)
	}
	return *cp
}

// storedSubtrees counts merkle_subtrees' rows of each level.
func (l *subtreeLog) storedSubtrees(t *testing.T) map[int]int {
	t.Helper()
	rows, err := l.db.Pool.Query(t.Context(), `SELECT level, count(*) FROM merkle_subtrees GROUP BY level`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for rows.Next() {
		var level, n int
		if err := rows.Scan(&level, &n); err != nil {
			t.Fatal(err)
		}
		got[level] = n
	}
	return got
}

// sameProof fails the test unless a and b are the same proof, field by field.
func sameProof(t *testing.T, what string, a, b *ledger.Proof) {
	t.Helper()
	if a.LeafIndex != b.LeafIndex || !slices.Equal(a.Path, b.Path) || a.Checkpoint.Seq != b.Checkpoint.Seq || a.Hash != b.Hash {
		t.Errorf("%s: leaf %d, %d hashes from the subtrees; leaf %d, %d hashes from the leaves", what, a.LeafIndex, len(a.Path), b.LeafIndex, len(b.Path))
	}
}

// Proofs built from the stored subtree roots are the proofs built from every leaf, hash for
// hash, against checkpoints whose ends fall on a stored block's end (2048), inside a block, and
// past the blocks a former checkpoint stored; and Prove gives them.
func TestProofsFromSubtreesAreTheLeaves(t *testing.T) {
	l := newSubtreeLog(t)
	ctx := t.Context()
	keys := ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	l.grow(t, 1500)
	var cps []ledger.Checkpoint
	cps = append(cps, l.seal(t, 2048))
	for range 3 {
		cps = append(cps, l.seal(t, 1000)) // 3048, 4048, 4500
	}
	l.grow(t, 700)
	cps = append(cps, l.seal(t, 100_000)) // 6600
	for i, want := range []int64{2048, 3048, 4048, 4500, 6600} {
		if cps[i].TreeSize != want {
			t.Fatalf("checkpoint %d covers %d events, want %d", cps[i].Seq, cps[i].TreeSize, want)
		}
	}
	// 6600 leaves: blocks 0-5 of 2^10, 0-2 of 2^11, 0 of 2^12.
	if got, want := l.storedSubtrees(t), map[int]int{10: 6, 11: 3, 12: 1}; !maps(got, want) {
		t.Errorf("stored subtrees per level: %v, want %v", got, want)
	}
	for _, cp := range cps {
		var picks []int
		for i := 0; i < int(cp.TreeSize); i += 397 {
			picks = append(picks, i)
		}
		for _, i := range []int{1023, 1024, 2047, 2048, 4095, 4096, int(cp.TreeSize) - 1} {
			if i < int(cp.TreeSize) {
				picks = append(picks, i)
			}
		}
		for _, i := range picks {
			fast, err := ledger.ProveEventFrom(ctx, l.db.Pool, l.ids[i], cp.Seq, false)
			if err != nil {
				t.Fatalf("event %d of checkpoint %d from the subtrees: %v", i, cp.Seq, err)
			}
			slow, err := ledger.ProveEventFrom(ctx, l.db.Pool, l.ids[i], cp.Seq, true)
			if err != nil {
				t.Fatalf("event %d of checkpoint %d from the leaves: %v", i, cp.Seq, err)
			}
			if fast.LeafIndex != uint64(i) {
				t.Errorf("event %d of checkpoint %d: leaf %d", i, cp.Seq, fast.LeafIndex)
			}
			sameProof(t, "event "+l.ids[i], fast, slow)
			if err := fast.Verify(keys); err != nil {
				t.Errorf("event %d of checkpoint %d: %v", i, cp.Seq, err)
			}
			if i%3 == 0 {
				auto, err := ledger.Prove(ctx, l.db.Pool, l.ids[i], cp.Seq)
				if err != nil {
					t.Fatal(err)
				}
				sameProof(t, "Prove of "+l.ids[i], auto, slow)
			}
		}
	}

	// Verify recomputes every stored root of this log, sealed in checkpoints that end inside
	// blocks and on a block's last leaf; from checkpoint 1 (leaf 2047, the end of block 1 and of
	// level 11's subtree 0), those completed after it: blocks 2-5, level 11's 1-2, level 12's 0.
	for _, tt := range []struct{ from, want int64 }{{0, 10}, {1, 7}} {
		rep, err := ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys, FromCheckpoint: tt.from})
		if err != nil {
			t.Fatalf("verify from checkpoint %d: %v", tt.from, err)
		}
		if rep.Subtrees != tt.want {
			t.Errorf("verify from checkpoint %d: %d stored subtree roots checked, want %d", tt.from, rep.Subtrees, tt.want)
		}
	}
}

func maps(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A stored subtree root that was changed gives a proof that does not verify against the signed
// checkpoint, so Prove proves from the leaves instead; stored roots that are missing (a log
// sealed before they were stored) are filled in by the next seal.
func TestSubtreeRootsAreOnlyACache(t *testing.T) {
	l := newSubtreeLog(t)
	ctx := t.Context()
	keys := ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	l.grow(t, 1100) // 3300: blocks 0-2
	cp := l.seal(t, 100_000)
	first := l.ids[5] // its path holds the root of block 1
	owner := func(stmt string) {
		t.Helper()
		if _, err := l.db.Pool.Exec(ctx, `ALTER TABLE merkle_subtrees DISABLE TRIGGER USER; `+stmt+`; ALTER TABLE merkle_subtrees ENABLE TRIGGER USER`); err != nil {
			t.Fatal(err)
		}
	}
	owner(`UPDATE merkle_subtrees SET root = sha256('forged') WHERE level = 10 AND idx = 1`)

	forged, err := ledger.ProveEventFrom(ctx, l.db.Pool, first, cp.Seq, false)
	if err != nil {
		t.Fatal(err)
	}
	var m *ledger.Mismatch
	if err := forged.Verify(keys); !errors.As(err, &m) || m.Field != "path" {
		t.Errorf("a proof from a changed subtree root: %v, want a path mismatch", err)
	}
	slow, err := ledger.ProveEventFrom(ctx, l.db.Pool, first, cp.Seq, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ledger.Prove(ctx, l.db.Pool, first, 0)
	if err != nil {
		t.Fatalf("Prove with a changed subtree root: %v", err)
	}
	sameProof(t, "Prove with a changed subtree root", p, slow)
	if err := p.Verify(keys); err != nil {
		t.Error(err)
	}

	// The place of a block's last leaf is checked the same way: a wrong one finds other leaves.
	owner(`UPDATE merkle_subtrees SET last_position = last_position - 7 WHERE level = 10 AND idx = 0`)
	if moved, err := ledger.ProveEventFrom(ctx, l.db.Pool, l.ids[1500], cp.Seq, false); err == nil && moved.Verify(keys) == nil {
		t.Error("a proof from a moved block: it verifies, want it not to")
	}
	if p, err := ledger.Prove(ctx, l.db.Pool, l.ids[1500], 0); err != nil || p.Verify(keys) != nil || p.LeafIndex != 1500 {
		t.Errorf("Prove with a moved block: %v", err)
	}

	// Without stored roots (a log sealed before the table), Prove reads the leaves.
	owner(`TRUNCATE merkle_subtrees`)
	if _, err := ledger.ProveEventFrom(ctx, l.db.Pool, l.ids[2000], cp.Seq, false); err == nil {
		t.Error("a proof from the subtrees with none stored: want an error")
	}
	if p, err := ledger.Prove(ctx, l.db.Pool, l.ids[2000], 0); err != nil || p.Verify(keys) != nil {
		t.Errorf("Prove with no subtree stored: %v", err)
	}

	l.grow(t, 10)
	l.seal(t, 100_000)
	if got, want := l.storedSubtrees(t), map[int]int{10: 3, 11: 1}; !maps(got, want) {
		t.Errorf("stored subtrees after the backfill: %v, want %v", got, want)
	}
	fast, err := ledger.ProveEventFrom(ctx, l.db.Pool, l.ids[2000], 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := fast.Verify(keys); err != nil {
		t.Errorf("a proof from the backfilled subtrees: %v", err)
	}

	// A log changed under its checkpoint gets no stored roots, and its new events are sealed.
	owner(`TRUNCATE merkle_subtrees`)
	if _, err := l.db.Pool.Exec(ctx, `ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete;
		UPDATE event_log SET hash = sha256('forged') WHERE event_id = '`+l.ids[100]+`';
		ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete`); err != nil {
		t.Fatal(err)
	}
	l.grow(t, 10)
	if cp := l.seal(t, 100_000); cp.TreeSize != int64(l.events) {
		t.Errorf("sealed %d events of %d", cp.TreeSize, l.events)
	}
	if got := l.storedSubtrees(t); len(got) != 0 {
		t.Errorf("stored subtrees of a changed log: %v, want none", got)
	}
	if _, err := ledger.Prove(ctx, l.db.Pool, l.ids[2000], 0); err == nil {
		t.Error("Prove on a changed log: want an error")
	}
}

// Verify recomputes every stored subtree root it walks past and names one that is not the
// log's, or that names another last leaf, or that covers leaves the log does not have; from a
// checkpoint, it checks those completed after it.
func TestVerifyChecksStoredSubtreeRoots(t *testing.T) {
	l := newSubtreeLog(t)
	ctx := t.Context()
	keys := ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	l.grow(t, 1100) // 3300 events: blocks 0-2 and their parent, level 11 index 0
	l.seal(t, 100_000)
	exec := func(stmt string) {
		t.Helper()
		if _, err := l.db.Pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec(`CREATE TABLE saved_subtrees AS SELECT * FROM merkle_subtrees`)
	owner := func(stmt string) {
		t.Helper()
		exec(`ALTER TABLE merkle_subtrees DISABLE TRIGGER USER; ` + stmt + `; ALTER TABLE merkle_subtrees ENABLE TRIGGER USER`)
	}
	positionOf := func(leaf int) int64 {
		t.Helper()
		var pos int64
		if err := l.db.Pool.QueryRow(ctx, `SELECT global_position FROM event_log ORDER BY transaction_id, global_position OFFSET $1 LIMIT 1`, leaf).Scan(&pos); err != nil {
			t.Fatal(err)
		}
		return pos
	}

	rep, err := ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subtrees != 4 {
		t.Errorf("a clean log: %d stored subtree roots checked, want 4 (level 10: 0-2, level 11: 0)", rep.Subtrees)
	}

	for _, tt := range []struct {
		name, stmt string
		position   int64 // where the mismatch is named; 0: after the walk
	}{
		{"a root changed", `UPDATE merkle_subtrees SET root = sha256('forged') WHERE level = 10 AND idx = 1`, positionOf(2047)},
		{"a parent's root changed", `UPDATE merkle_subtrees SET root = sha256('forged') WHERE level = 11 AND idx = 0`, positionOf(2047)},
		{"a block's last leaf moved", `UPDATE merkle_subtrees SET last_position = last_position - 7 WHERE level = 10 AND idx = 0`, positionOf(1023)},
		{"a root of leaves the log does not have", `INSERT INTO merkle_subtrees SELECT 10, 9, root, last_transaction_id, 9223372036854775807 FROM merkle_subtrees WHERE level = 10 AND idx = 2`, 0},
		{"a second root stored for a block", `INSERT INTO merkle_subtrees SELECT 10, 7, root, last_transaction_id, last_position FROM merkle_subtrees WHERE level = 10 AND idx = 1`, positionOf(2047)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			owner(tt.stmt)
			defer owner(`TRUNCATE merkle_subtrees; INSERT INTO merkle_subtrees SELECT * FROM saved_subtrees`)
			_, err := ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys})
			var m *ledger.Mismatch
			if !errors.As(err, &m) || m.Field != "merkle_subtrees" || m.Position != tt.position {
				t.Fatalf("verify: %v, want the stored subtrees named at position %d", err, tt.position)
			}
			t.Log(err)
		})
	}

	// From a checkpoint: the roots completed before it are not walked past, so not checked;
	// those completed after it are: block 3, and with it leaves 2048-4095 and 0-4095.
	l.grow(t, 300) // 4200 events
	cp := l.seal(t, 100_000)
	rep, err = ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys, FromCheckpoint: cp.Seq - 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subtrees != 3 {
		t.Errorf("from checkpoint %d: %d stored subtree roots checked, want 3 (level 10: 3, level 11: 1, level 12: 0)", cp.Seq-1, rep.Subtrees)
	}

	// A wrong root over events no checkpoint covers yet is named when the walk ends: block 4
	// (leaves 4096-5119) is complete in the log but not sealed.
	l.grow(t, 400) // 5400 events
	owner(`INSERT INTO merkle_subtrees SELECT 10, 4, sha256('forged'), transaction_id, global_position
		FROM event_log ORDER BY transaction_id, global_position OFFSET 5119 LIMIT 1`)
	_, err = ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys})
	if m := (*ledger.Mismatch)(nil); !errors.As(err, &m) || m.Field != "merkle_subtrees" || m.Position != positionOf(5119) {
		t.Errorf("a wrong root over unsealed events: %v, want it named at leaf 5119's position", err)
	}
	owner(`DELETE FROM merkle_subtrees WHERE level = 10 AND idx = 4`)

	// A change to the log changes the subtrees over it too: it is named for what it is, by the
	// checkpoint that covers it, not blamed on the stored roots. Two events of one transaction
	// swap places: each stream's chain still links; block 0's root, and the checkpoint's, change.
	p10, p20 := positionOf(10), positionOf(20)
	exec(fmt.Sprintf(`ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete;
		UPDATE event_log SET global_position = -1 WHERE global_position = %[1]d;
		UPDATE event_log SET global_position = %[1]d WHERE global_position = %[2]d;
		UPDATE event_log SET global_position = %[2]d WHERE global_position = -1;
		ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete`, p10, p20))
	_, err = ledger.Verify(ctx, l.db.Pool, ledger.VerifyOptions{Keys: keys})
	var m *ledger.Mismatch
	if !errors.As(err, &m) || m.Field != "root" || m.Checkpoint != 1 {
		t.Errorf("two events of the log swapped: %v, want checkpoint 1's root named", err)
	}
}
