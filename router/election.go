package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// electionInterval is how often a standby asks for a consumer group's lock, and how often the
// holder checks that the connection holding its locks is alive: a standby takes over about this
// long after the holder's connection ends.
const electionInterval = time.Second

// lockQueryTimeout bounds every statement on the lock connection. A holder whose connection stops
// answering gives its parts up after this long: better to stop than to run without the lock.
const lockQueryTimeout = 2 * time.Second

// lockSessionParams make PostgreSQL notice a lock session whose peer is gone (host dead, network
// cut) in about 4 s rather than after the kernel's default two hours of TCP keepalive: the
// holder pings every second, so a socket idle for 2 s is probed every second and dropped after 2
// unanswered probes, and data left unacknowledged for 4 s (an answer to the last ping) drops it
// too. The session ends and its locks with it, so a standby takes over at its next ask.
var lockSessionParams = map[string]string{
	"tcp_keepalives_idle":     "2",
	"tcp_keepalives_interval": "1",
	"tcp_keepalives_count":    "2",
	"tcp_user_timeout":        "4000",
}

// idleSessionTimeout ends a lock session that has not pinged for this long (see runElected).
const idleSessionTimeout = "10s"

// electionName returns the application_name of a component's lock sessions: unique to this
// component in this process, so that a later run can tell its own former session, still holding a
// lock, from another process's.
func electionName(component string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "herald " + component + " election " + hex.EncodeToString(b)
}

// parts tracks whether each part of a component (a relay partition, a projection) runs, so that
// /readyz can name the part that does not. A part standing by while another process holds its
// consumer group is fine: the group is served.
type parts struct {
	mu    sync.Mutex
	state map[string]string // part → why it is not running; "" when it runs or stands by
}

func newParts(names ...string) *parts {
	p := &parts{state: make(map[string]string, len(names))}
	for _, n := range names {
		p.state[n] = "starting"
	}
	return p
}

// set records why part is not running; "" says it runs (or stands by).
func (p *parts) set(part, notRunning string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state[part] = notRunning
}

// setAll records the same reason for every part.
func (p *parts) setAll(notRunning string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.state {
		p.state[n] = notRunning
	}
}

// get returns why part is not running, "" if it is.
func (p *parts) get(part string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state[part]
}

// ready returns nil when every part runs or stands by, and otherwise an error naming each part
// that does not and why.
func (p *parts) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var down []string
	for n, why := range p.state {
		if why != "" {
			down = append(down, n+": "+why)
		}
	}
	if len(down) == 0 {
		return nil
	}
	sort.Strings(down)
	return errors.New(strings.Join(down, "; "))
}

// groupLockKey is the advisory lock of a consumer group: whoever holds it runs the group.
func groupLockKey(group string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("herald consumer group " + group))
	return int64(h.Sum64() >> 1)
}

// runElected runs one part per consumer group, each only while this process holds the group's
// PostgreSQL advisory lock, until ctx is done or a part fails. Then every part stops and the
// locks are released: the component runs whole or not at all, and the caller starts it again.
//
// The locks are session locks on a connection of their own, outside pool, named name (see
// electionName), so they last exactly as long as that session: a process that dies, or loses its
// connection, or a PostgreSQL restart, releases them, and a standby asking every electionInterval
// takes over. The session's TCP keepalives (lockSessionParams) make PostgreSQL end it within
// seconds when the holder's host or network is gone. A holder that finds its lock connection
// gone, or not answering within lockQueryTimeout, stops its parts at once rather than run beside
// the new holder. A run that finds a group's lock held by a former session of its own (one whose
// close did not reach the server) ends that session instead of standing by for nobody. Two
// holders for a moment (the old one noticing late) cost no correctness: each batch still locks
// its group's offset row. A part's panic is that part's failure: the component restarts whole.
func runElected(ctx context.Context, pool *pgxpool.Pool, name string, groups []string, health *parts, logger *slog.Logger,
	run func(ctx context.Context, i int, running func()) error) error {
	cfg := pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range lockSessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		health.setAll("cannot connect for the election: " + err.Error())
		return fmt.Errorf("connect for the consumer groups' locks: %w", err)
	}
	// A holder pings every second, so a lock session idle for idleSessionTimeout belongs to a
	// process that has stopped running (frozen, swapped out) while its kernel still answers
	// keepalives: PostgreSQL ends it, and a standby takes over. PostgreSQL 13 lacks the setting.
	if _, err := conn.Exec(ctx, `SELECT set_config('idle_session_timeout', $1, false)
		WHERE current_setting('server_version_num')::int >= 140000`, idleSessionTimeout); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockQueryTimeout)
		defer cancel()
		_ = conn.Close(cctx)
		health.setAll("cannot set up the election's connection: " + err.Error())
		return fmt.Errorf("set up the consumer groups' lock session: %w", err)
	}
	pid := conn.PgConn().PID()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
		defer cancel()
		_ = conn.Close(cctx) // ends the session: every lock it held is released
		// A close that never reached the server (the connection hangs) leaves the session, and
		// its locks, behind: end it from another connection, so that a standby need not wait
		// for PostgreSQL's keepalives.
		if _, err := pool.Exec(cctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE pid = $1 AND application_name = $2`, pid, name); err != nil {
			logger.DebugContext(cctx, "could not make sure the former lock session ended", "pid", pid, "error", err)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var connMu sync.Mutex // a pgx.Conn serves one query at a time
	query := func(f func(ctx context.Context) error) error {
		connMu.Lock()
		defer connMu.Unlock()
		qctx, cancel := context.WithTimeout(ctx, lockQueryTimeout)
		defer cancel()
		return f(qctx)
	}

	type result struct {
		part int // -1: the lock connection
		err  error
	}
	results := make(chan result, len(groups)+1)
	go func() {
		tick := time.NewTicker(electionInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				results <- result{-1, nil}
				return
			case <-tick.C:
			}
			if err := query(func(ctx context.Context) error { return conn.Ping(ctx) }); err != nil && ctx.Err() == nil {
				results <- result{-1, fmt.Errorf("lost the connection holding the consumer groups' locks: %w", err)}
				return
			}
		}
	}()
	for i, group := range groups {
		go func() {
			key := groupLockKey(group)
			var waiting string // why this part last waited, to log each change once
			for {
				var held bool
				err := query(func(ctx context.Context) error {
					return conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&held)
				})
				if err == nil && !held {
					var holder lockHolder
					if err = query(func(ctx context.Context) error { return holder.find(ctx, conn, key) }); err == nil {
						err = standBy(ctx, conn, query, name, group, holder, &waiting, health, logger)
					}
				}
				if ctx.Err() != nil {
					results <- result{i, nil}
					return
				}
				if err != nil {
					results <- result{i, fmt.Errorf("ask for its lock: %w", err)}
					return
				}
				if held {
					break
				}
				select {
				case <-ctx.Done():
					results <- result{i, nil}
					return
				case <-time.After(electionInterval):
				}
			}
			health.set(group, "starting")
			logger.InfoContext(ctx, "consumer group active", "consumer_group", group)
			err := runPart(ctx, group, logger, func() error {
				return run(ctx, i, func() { health.set(group, "") })
			})
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped unexpectedly")
			}
			results <- result{i, err}
		}()
	}

	var first error
	for n := 0; n < len(groups)+1; n++ {
		r := <-results
		if r.err != nil && first == nil {
			first = r.err
			if r.part >= 0 {
				health.setAll("stopped while " + groups[r.part] + " restarts")
				health.set(groups[r.part], r.err.Error())
				first = fmt.Errorf("%s: %w", groups[r.part], r.err)
			} else {
				health.setAll(r.err.Error())
			}
		}
		cancel()
	}
	return first
}

// runPart runs one part, turning its panic into its error: the component then restarts whole,
// like after any other failure, instead of the panic ending the process. The stack goes to the
// log, whose handler masks secrets.
func runPart(ctx context.Context, group string, logger *slog.Logger, run func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			logger.ErrorContext(ctx, "consumer group panicked; its component starts again",
				"consumer_group", group, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return run()
}

// lockHolder is the session that holds a consumer group's lock; pid 0 when none does.
type lockHolder struct {
	pid  uint32
	name string // its application_name, "" when this role may not see it
}

// find reads who holds the advisory lock key. A bigint advisory lock shows in pg_locks with its
// high half in classid, its low half in objid, and objsubid 1.
func (h *lockHolder) find(ctx context.Context, conn *pgx.Conn, key int64) error {
	err := conn.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, '')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint = $1 AND l.objid::bigint = $2
		LIMIT 1`, key>>32, key&0xffffffff).Scan(&h.pid, &h.name)
	if errors.Is(err, pgx.ErrNoRows) {
		*h = lockHolder{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("find who holds it: %w", err)
	}
	return nil
}

// standBy records why a part does not run yet. It stands by — ready — only while another session
// holds its lock. A former session of this very component (name) is ended: nobody else would
// run the group while it lingers.
func standBy(ctx context.Context, conn *pgx.Conn, query func(func(context.Context) error) error, name, group string,
	holder lockHolder, waiting *string, health *parts, logger *slog.Logger) error {
	switch {
	case holder.pid == 0:
		// Released since we asked: ask again.
		return nil
	case holder.name == name:
		health.set(group, "its lock is held by a former session of this process; ending it")
		if *waiting != "former" {
			*waiting = "former"
			logger.WarnContext(ctx, "a former lock session of this process still holds the consumer group; ending it",
				"consumer_group", group, "pid", holder.pid)
		}
		return query(func(ctx context.Context) error {
			_, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, holder.pid)
			if err != nil {
				return fmt.Errorf("end former session %d: %w", holder.pid, err)
			}
			return nil
		})
	default:
		health.set(group, "")
		if *waiting != "standby" {
			*waiting = "standby"
			logger.InfoContext(ctx, "standing by: another process runs this consumer group", "consumer_group", group)
		}
		return nil
	}
}
