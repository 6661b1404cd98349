package router_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// lockHolders returns the sessions holding advisory locks in db, by application_name.
func lockHolders(ctx context.Context, db *heraldtest.Database) (map[int32]string, error) {
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT l.pid, coalesce(a.application_name, '')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return nil, err
	}
	holders := map[int32]string{}
	var pid int32
	var name string
	_, err = pgx.ForEachRow(rows, []any{&pid, &name}, func() error {
		holders[pid] = name
		return nil
	})
	return holders, err
}

// projectedToHead reports whether status and history have reached the last event of the log.
func projectedToHead(ctx context.Context, db *heraldtest.Database) (bool, error) {
	var lagging int
	err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (VALUES ('notification_status'), ('notification_history')) g(name)
		LEFT JOIN event_log_offsets o ON o.consumer_group = g.name
		WHERE o.offset_acked IS DISTINCT FROM (SELECT max(global_position) FROM event_log)`).Scan(&lagging)
	return lagging == 0, err
}

func runProjector(t *testing.T, p *router.Projector) {
	t.Helper()
	heraldtest.RunInBackground(t, "projector", p.Run)
}

// A projector whose lock connection stops answering — its peer hangs, the network drops its
// packets — gives its consumer groups up within seconds, its stale session is ended, and the
// groups run again (here or in the standby) under a live session.
func TestProjectorLockConnectionHangs(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	direct := db.Pool.Config().ConnConfig
	proxy := newFreezingProxy(t, net.JoinHostPort(direct.Host, strconv.Itoa(int(direct.Port))))
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", proxy.port()
	cfg.ConnConfig.TLSConfig, cfg.ConnConfig.Fallbacks = nil, nil
	proxied, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer proxied.Close()

	pcfg := router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50}
	active := router.NewProjector(proxied, pcfg, quietLogger(), projections.All()...)
	runProjector(t, active)
	var frozenPID int32
	heraldtest.Eventually(t, 20*time.Second, "the first projector to hold its groups", func() (bool, error) {
		holders, err := lockHolders(ctx, db)
		for pid, name := range holders {
			if name == router.ElectionName(active) {
				frozenPID = pid
			}
		}
		return frozenPID != 0 && active.Ready(ctx) == nil, err
	})
	standby := router.NewProjector(db.Pool, pcfg, quietLogger(), projections.All()...)
	runProjector(t, standby)
	heraldtest.Eventually(t, 10*time.Second, "the second projector to stand by", func() (bool, error) {
		return standby.Ready(ctx) == nil, nil
	})

	var clientPort int
	if err := db.Pool.QueryRow(ctx, `SELECT client_port FROM pg_stat_activity WHERE pid = $1`, frozenPID).Scan(&clientPort); err != nil {
		t.Fatal(err)
	}
	proxy.freeze(t, clientPort)
	frozenAt := time.Now()

	log := events.NewLog(db.Pool)
	for range 10 {
		if err := story(ctx, log, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.Eventually(t, 15*time.Second, "a live session to hold both groups instead of the hung one", func() (bool, error) {
		holders, err := lockHolders(ctx, db)
		if err != nil {
			return false, err
		}
		_, stale := holders[frozenPID]
		var live int
		for _, name := range holders {
			if strings.HasPrefix(name, "herald projector election ") {
				live++
			}
		}
		return !stale && live > 0, nil
	})
	t.Logf("the hung lock session was gone %s after its connection froze", time.Since(frozenAt).Round(100*time.Millisecond))
	heraldtest.Eventually(t, 30*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		return projectedToHead(ctx, db)
	})
	heraldtest.Eventually(t, 10*time.Second, "both projectors to be ready", func() (bool, error) {
		return active.Ready(ctx) == nil && standby.Ready(ctx) == nil, nil
	})
}

// runtimeProjector returns a projector of every projection on a pool that connects as Herald's
// runtime role, as the service does. The pool closes when the test ends, after the projector
// stopped.
func runtimeProjector(t *testing.T, db *heraldtest.Database) (*pgxpool.Pool, *router.Projector) {
	t.Helper()
	runtime, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runtime.Close)
	return runtime, router.NewProjector(runtime, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50},
		quietLogger(), projections.All()...)
}

// A projector that finds a consumer group's lock held by a former session of its own — a close
// that never reached the server — ends that session and runs the group, rather than stand by,
// ready, for nobody.
func TestProjectorEndsItsFormerLockSession(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	// Herald's own role, not the owner, ends the session: it needs no more grants for that.
	runtime, projector := runtimeProjector(t, db)

	cfg := runtime.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = router.ElectionName(projector)
	former, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer former.Close(context.Background())
	if _, err := former.Exec(ctx, `SELECT pg_advisory_lock($1)`, router.GroupLockKey("notification_status")); err != nil {
		t.Fatal(err)
	}
	log := events.NewLog(db.Pool)
	for range 10 {
		if err := story(ctx, log, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	}

	runProjector(t, projector)
	heraldtest.Eventually(t, 15*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		return projectedToHead(ctx, db)
	})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := former.Ping(pctx); err == nil {
		t.Error("the former lock session is still alive")
	}
	heraldtest.Eventually(t, 10*time.Second, "the projector to be ready", func() (bool, error) {
		return projector.Ready(ctx) == nil, nil
	})
}

// panicking panics in its first batch, as a bug in a read model would.
type panicking struct {
	projections.Rebuildable
	panicked atomic.Bool
}

func (p *panicking) ApplyBatch(ctx context.Context, tx pgx.Tx, recs []events.Recorded) error {
	if p.panicked.CompareAndSwap(false, true) {
		panic("injected panic")
	}
	return p.Rebuildable.ApplyBatch(ctx, tx, recs)
}

// A projection that panics fails like any other part: the projector logs the panic with its
// stack, starts again whole, and the projection reaches the head of the log. The process lives.
func TestProjectorRecoversAPanic(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	log := events.NewLog(db.Pool)
	for range 10 {
		if err := story(ctx, log, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	}
	var logged logBuffer
	status := &panicking{Rebuildable: projections.Status{}}
	projector := router.NewProjector(db.Pool, router.ProjectorConfig{PollInterval: 20 * time.Millisecond, BatchSize: 50},
		slog.New(slog.NewTextHandler(&logged, nil)), status, projections.History{})
	runProjector(t, projector)
	heraldtest.Eventually(t, 30*time.Second, "status and history to reach the head of the log", func() (bool, error) {
		return projectedToHead(ctx, db)
	})
	if !status.panicked.Load() {
		t.Fatal("the projection never panicked")
	}
	out := logged.String()
	for _, want := range []string{"consumer group panicked", "injected panic", "election_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

// A projector does not call a group "standing by", and ready, while the session holding its lock
// is one of its own former sessions: here one it cannot end (another role's), so the group stays
// named as not running for as long as that session holds it.
func TestProjectorNotReadyWhileItsFormerSessionHolds(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	ctx := context.Background()
	_, projector := runtimeProjector(t, db)

	// The owner's session, named as the projector's: the runtime role may not end it.
	cfg := db.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = router.ElectionName(projector)
	former, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer former.Close(context.Background())
	if _, err := former.Exec(ctx, `SELECT pg_advisory_lock($1)`, router.GroupLockKey("notification_status")); err != nil {
		t.Fatal(err)
	}

	runProjector(t, projector)
	var said string
	heraldtest.Eventually(t, 15*time.Second, "readiness to name notification_status", func() (bool, error) {
		err := projector.Ready(ctx)
		if err == nil {
			return false, nil
		}
		said = err.Error()
		return strings.Contains(said, "notification_status: ") && strings.Contains(said, "former session"), nil
	})
	t.Logf("while its former session holds notification_status, the projector says: %s", said)
	// It stays so: at no point in the next three seconds does it call itself ready.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := projector.Ready(ctx); err == nil {
			t.Fatal("the projector is ready while its former session holds notification_status")
		}
	}
	if err := former.Close(ctx); err != nil {
		t.Fatal(err)
	}
	heraldtest.Eventually(t, 20*time.Second, "the projector to be ready once the former session is gone", func() (bool, error) {
		return projector.Ready(ctx) == nil, nil
	})
}
