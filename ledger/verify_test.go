package ledger_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
)

// sealedLog is a log of four streams appended through every path events.Log has, and a
// checkpoint covering all of it, signed with key.
type sealedLog struct {
	db      *heraldtest.Database
	key     ed25519.PrivateKey
	streams map[string]string // name → stream id
	rows    []logRow          // in the consumers' order
}

// logRow is an event's place in the log.
type logRow struct {
	position int64
	xid      string
	stream   string
	version  int64
}

func newSealedLog(t *testing.T) *sealedLog {
	t.Helper()
	ctx := t.Context()
	l := &sealedLog{db: heraldtest.NewDatabase(t), streams: map[string]string{}}
	_, l.key, _ = ed25519.GenerateKey(nil)
	log := events.NewLog(l.db.Pool)
	md := events.Metadata{Actor: "test", CorrelationID: "c-1"}
	for _, name := range []string{"a", "b", "c", "d"} {
		l.streams[name] = uuid.NewString()
	}
	// a: three appends of one event; b and d: one append of two; c: a batch's start.
	for v := range int64(3) {
		if _, err := log.Append(ctx, l.streams["a"], v, md, &events.NotificationProcessing{Attempt: int(v) + 1, Worker: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"b", "d"} {
		if name == "d" {
			var b pgx.Batch
			if _, err := log.QueueStart(&b, l.streams["c"], md, &events.NotificationProcessing{Attempt: 1, Worker: "ç"}); err != nil {
				t.Fatal(err)
			}
			if err := l.db.Pool.SendBatch(ctx, &b).Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := log.Append(ctx, l.streams[name], 0, md, &events.NotificationProcessing{Attempt: 1},
			&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: "m-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.WaitLogVisible(t, l.db, 8)
	cp, _, err := ledger.NewSealer(l.db.Pool, l.key).Seal(ctx)
	if err != nil || cp == nil || cp.TreeSize != 8 {
		t.Fatalf("seal: %+v, %v; want a checkpoint of 8 events", cp, err)
	}
	rows, err := l.db.Pool.Query(ctx, `SELECT global_position, transaction_id::text, stream_id::text, stream_version
		FROM event_log ORDER BY transaction_id, global_position`)
	if err != nil {
		t.Fatal(err)
	}
	l.rows, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (logRow, error) {
		var x logRow
		return x, r.Scan(&x.position, &x.xid, &x.stream, &x.version)
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// row returns the row of stream name at version.
func (l *sealedLog) row(t *testing.T, name string, version int64) logRow {
	t.Helper()
	for _, r := range l.rows {
		if r.stream == l.streams[name] && r.version == version {
			return r
		}
	}
	t.Fatalf("no %s v%d", name, version)
	return logRow{}
}

// tamper runs stmts as the superuser the test connects as, with the log's and checkpoints' user
// triggers disabled: what the database's own guards cannot stop.
func (l *sealedLog) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	all := append([]string{`ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete`,
		`ALTER TABLE checkpoints DISABLE TRIGGER USER`}, stmts...)
	all = append(all, `ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete`, `ALTER TABLE checkpoints ENABLE TRIGGER USER`)
	for _, s := range all {
		if _, err := l.db.Pool.Exec(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func (l *sealedLog) verify(t *testing.T, opts ledger.VerifyOptions) (ledger.VerifyReport, error) {
	t.Helper()
	if opts.Keys == nil {
		opts.Keys = ledger.NewKeys(l.key.Public().(ed25519.PublicKey))
	}
	return ledger.Verify(t.Context(), l.db.Pool, opts)
}

// An untouched log verifies: every event's link, the checkpoint's root and signature.
func TestVerifyCleanLog(t *testing.T) {
	l := newSealedLog(t)
	// One more event, after the checkpoint: unsealed, its link still checked.
	if _, err := events.NewLog(l.db.Pool).Append(t.Context(), uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.verify(t, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := ledger.KeyID(l.key.Public().(ed25519.PublicKey))
	want := ledger.VerifyReport{Events: 9, Streams: 5, Checkpoints: 1, Signed: true, LastCheckpoint: 1, Unsealed: 1,
		Signers: []ledger.SignedRange{{KeyID: id, First: 1, Last: 1}}}
	rep.Elapsed = 0
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}

	// From the checkpoint on: only the event after it is read.
	heraldtest.WaitLogVisible(t, l.db, 9)
	if cp, _, err := ledger.NewSealer(l.db.Pool, l.key).Seal(t.Context()); err != nil || cp == nil || cp.Seq != 2 || cp.TreeSize != 9 {
		t.Fatalf("second seal: %+v, %v", cp, err)
	}
	rep, err = l.verify(t, ledger.VerifyOptions{FromCheckpoint: 1})
	if err != nil {
		t.Fatal(err)
	}
	want = ledger.VerifyReport{Events: 1, Streams: 1, Checkpoints: 1, Signed: true, LastCheckpoint: 2, FromCheckpoint: 1,
		Signers: []ledger.SignedRange{{KeyID: id, First: 1, Last: 2}}}
	rep.Elapsed = 0
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report from checkpoint 1 (-want +got):\n%s", diff)
	}

	// A key other than the sealer's is refused.
	_, other, _ := ed25519.GenerateKey(nil)
	_, err = l.verify(t, ledger.VerifyOptions{Keys: ledger.NewKeys(other.Public().(ed25519.PublicKey))})
	var m *ledger.Mismatch
	if !errors.As(err, &m) || m.Field != "signature" || m.Checkpoint != 1 {
		t.Errorf("verify with another key: %v, want checkpoint 1's signature named", err)
	}
}

// Each change to the history made behind the database's back is caught, and the first place
// it shows is named.
func TestVerifyCatchesTampering(t *testing.T) {
	for _, tt := range []struct {
		name string
		do   func(t *testing.T, l *sealedLog) (stmts []string, want ledger.Mismatch)
	}{
		{"one field of one event's data", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			r := l.row(t, "a", 2)
			return []string{fmt.Sprintf(`UPDATE event_log SET data = jsonb_set(data, '{attempt}', '7') WHERE global_position = %d`, r.position)},
				ledger.Mismatch{Position: r.position, Stream: r.stream, Version: 2, Field: "hash"}
		}},
		{"one event deleted", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			r, next := l.row(t, "a", 2), l.row(t, "a", 3)
			return []string{fmt.Sprintf(`DELETE FROM event_log WHERE global_position = %d`, r.position)},
				ledger.Mismatch{Position: next.position, Stream: r.stream, Version: 3, Field: "stream_version"}
		}},
		{"a whole stream deleted", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			last := l.rows[len(l.rows)-1]
			return []string{fmt.Sprintf(`DELETE FROM event_log WHERE stream_id = '%s'`, l.streams["b"])},
				ledger.Mismatch{Position: last.position, Stream: last.stream, Version: last.version, Checkpoint: 1, Field: "tree_size"}
		}},
		{"two events' data swapped", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			r1, r2 := l.row(t, "b", 2), l.row(t, "d", 2)
			return []string{fmt.Sprintf(`UPDATE event_log e SET data = o.data FROM event_log o
				WHERE (e.global_position, o.global_position) IN ((%[1]d, %[2]d), (%[2]d, %[1]d))`, r1.position, r2.position)},
				ledger.Mismatch{Position: r1.position, Stream: r1.stream, Version: 2, Field: "hash"}
		}},
		{"a forged event with its chain recomputed", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			// The last event of a is replaced, in its very place in the log, by one the chain
			// trigger hashes: every link holds, only the checkpoint's root can tell.
			r, last := l.row(t, "a", 3), l.rows[len(l.rows)-1]
			return []string{
					`CREATE TEMP TABLE forged AS SELECT * FROM event_log WHERE global_position = ` + fmt.Sprint(r.position),
					`DELETE FROM event_log WHERE global_position = ` + fmt.Sprint(r.position),
					// The chain trigger would give the row a new place at the log's end: it is
					// lifted, and the forger computes the hash as it would.
					`ALTER TABLE event_log DISABLE TRIGGER event_log_chain`,
					`INSERT INTO event_log (global_position, event_id, stream_id, stream_version, event_type, occurred_at, data, metadata, transaction_id, hash)
					 SELECT f.global_position, f.event_id, f.stream_id, f.stream_version, f.event_type, f.occurred_at, '{"attempt": 3, "worker": "forger"}', f.metadata, f.transaction_id,
					        event_log_hash(p.hash, f.event_id, f.stream_id, f.stream_version, f.event_type, f.occurred_at, '{"attempt": 3, "worker": "forger"}', f.metadata)
					 FROM forged f JOIN event_log p ON p.stream_id = f.stream_id AND p.stream_version = f.stream_version - 1`,
					`ALTER TABLE event_log ENABLE TRIGGER event_log_chain`,
				},
				ledger.Mismatch{Position: last.position, Stream: last.stream, Version: last.version, Checkpoint: 1, Field: "root"}
		}},
		{"two events' positions swapped, their order and chains unchanged", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			// a's versions 1 and 2 are in transactions of their own: the order the tree follows
			// is the same, and each chain holds; only the leaves, which cover the positions, differ.
			r1, r2, last := l.row(t, "a", 1), l.row(t, "a", 2), l.rows[len(l.rows)-1]
			if r1.xid == r2.xid {
				t.Fatalf("a's versions 1 and 2 share transaction %s", r1.xid)
			}
			return []string{
					fmt.Sprintf(`UPDATE event_log SET global_position = -1 WHERE global_position = %d`, r1.position),
					fmt.Sprintf(`UPDATE event_log SET global_position = %d WHERE global_position = %d`, r1.position, r2.position),
					fmt.Sprintf(`UPDATE event_log SET global_position = %d WHERE global_position = -1`, r2.position),
				},
				ledger.Mismatch{Position: last.position, Stream: last.stream, Version: last.version, Checkpoint: 1, Field: "root"}
		}},
		{"a checkpoint's root replaced without the key", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			return []string{`UPDATE checkpoints SET root = sha256('another log') WHERE seq = 1`},
				ledger.Mismatch{Checkpoint: 1, Field: "signature"}
		}},
		{"the tail after a checkpoint truncated", func(t *testing.T, l *sealedLog) ([]string, ledger.Mismatch) {
			a, b := l.rows[len(l.rows)-2], l.rows[len(l.rows)-1]
			return []string{fmt.Sprintf(`DELETE FROM event_log WHERE global_position IN (%d, %d)`, a.position, b.position)},
				ledger.Mismatch{Checkpoint: 1, Field: "tree_size"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newSealedLog(t)
			if _, err := l.verify(t, ledger.VerifyOptions{}); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			stmts, want := tt.do(t, l)
			l.tamper(t, stmts...)
			_, err := l.verify(t, ledger.VerifyOptions{})
			var got *ledger.Mismatch
			if !errors.As(err, &got) {
				t.Fatalf("verify: %v, want a mismatch", err)
			}
			g := *got
			g.Reason = ""
			if diff := cmp.Diff(want, g); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s\n(%v)", diff, err)
			}
		})
	}
}

// Whatever hash a client sends, the database stores the chain's: the runtime role cannot choose
// it, nor change a checkpoint.
func TestRuntimeRoleCannotChooseTheHash(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	stream := uuid.New()
	var stored, want []byte
	if err := pool.QueryRow(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data, hash)
		VALUES (gen_random_uuid(), $1, 1, 'NotificationQueued', '{}', sha256('chosen')) RETURNING hash`, stream).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT event_log_hash($1, event_id, stream_id, stream_version, event_type, occurred_at, data, metadata)
		FROM event_log WHERE stream_id = $2`, ledger.Genesis[:], stream).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if string(stored) != string(want) {
		t.Errorf("stored hash %x, want the chain's %x", stored, want)
	}
	// A version with nothing before it to chain to is refused.
	if _, err := pool.Exec(ctx, `INSERT INTO event_log (event_id, stream_id, stream_version, event_type, data)
		VALUES (gen_random_uuid(), $1, 3, 'NotificationSent', '{}')`, stream); err == nil {
		t.Error("version 3 was appended after version 1")
	}
	var written bool
	if err := pool.QueryRow(ctx, `SELECT checkpoint_append(1, 1, '1', 1, sha256(''), '', 'k', '', now())`).Scan(&written); err != nil || !written {
		t.Fatalf("append a checkpoint as the runtime role: %v, %v", written, err)
	}
	for _, stmt := range []string{`INSERT INTO checkpoints VALUES (2, 1, '1', 1, sha256(''), '', 'k', '', now())`,
		`UPDATE checkpoints SET root = sha256('x')`, `DELETE FROM checkpoints`, `TRUNCATE checkpoints`,
		`ALTER TABLE checkpoints DISABLE TRIGGER USER`} {
		if _, err := pool.Exec(ctx, stmt); err == nil {
			t.Errorf("the runtime role ran %s", stmt)
		}
	}
}

// Many writers appending at once, to streams of their own and to streams they share (losing
// races and retrying), while a sealer seals: the chain holds and every checkpoint verifies.
func TestChainHoldsUnderConcurrentAppends(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	_, key, _ := ed25519.GenerateKey(nil)
	log := events.NewLog(db.Pool)
	shared := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	const writers, rounds = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	sealCtx, stopSealing := context.WithCancel(ctx)
	sealed := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { sealed <- n }()
		s := ledger.NewSealer(db.Pool, key).WithBatch(17)
		for sealCtx.Err() == nil {
			cp, _, err := s.Seal(ctx)
			if err != nil {
				errs <- err
				return
			}
			if cp != nil {
				n = cp.Seq
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := uuid.NewString()
			for i := range rounds {
				if _, err := log.Append(ctx, own, int64(2*i), events.Metadata{}, &events.NotificationProcessing{Attempt: i, Worker: fmt.Sprint(w)},
					&events.NotificationSent{Attempt: i}); err != nil {
					errs <- err
					return
				}
				stream := shared[i%len(shared)]
				for {
					var v int64
					if err := db.Pool.QueryRow(ctx, `SELECT coalesce(max(stream_version), 0) FROM event_log WHERE stream_id = $1`, stream).Scan(&v); err != nil {
						errs <- err
						return
					}
					_, err := log.Append(ctx, stream, v, events.Metadata{}, &events.NotificationProcessing{Attempt: i, Worker: fmt.Sprint(w)})
					if errors.Is(err, events.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	stopSealing()
	n := <-sealed
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := writers * rounds * 3
	heraldtest.WaitLogVisible(t, db, total)
	if _, _, err := ledger.NewSealer(db.Pool, key).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, db.Pool, ledger.VerifyOptions{Keys: ledger.NewKeys(key.Public().(ed25519.PublicKey))})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != int64(total) || rep.Streams != writers+int64(len(shared)) || rep.Checkpoints < n || rep.Unsealed != 0 {
		t.Errorf("report %+v: want %d events of %d streams, at least %d checkpoints, all sealed", rep, total, writers+len(shared), n)
	}
	t.Logf("%d checkpoints written while appending", n)
}
