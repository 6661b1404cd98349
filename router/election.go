package router

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
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
// The locks are session locks on a connection of their own, outside pool, so they last exactly
// as long as that connection: a process that dies, or loses its connection, or a PostgreSQL
// restart, releases them, and a standby asking every electionInterval takes over. A holder that
// finds its lock connection gone stops its parts at once rather than run beside the new holder.
// Two holders for a moment (the old one noticing late) cost no correctness: each batch still
// locks its group's offset row.
func runElected(ctx context.Context, pool *pgxpool.Pool, groups []string, health *parts, logger *slog.Logger,
	run func(ctx context.Context, i int, running func()) error) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		health.setAll("cannot connect for the election: " + err.Error())
		return fmt.Errorf("connect for the consumer groups' locks: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx) // ends the session: every lock it held is released
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var connMu sync.Mutex // a pgx.Conn serves one query at a time
	query := func(f func() error) error {
		connMu.Lock()
		defer connMu.Unlock()
		return f()
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
			if err := query(func() error { return conn.Ping(ctx) }); err != nil && ctx.Err() == nil {
				results <- result{-1, fmt.Errorf("lost the connection holding the consumer groups' locks: %w", err)}
				return
			}
		}
	}()
	for i, group := range groups {
		go func() {
			key := groupLockKey(group)
			standing := false
			for {
				var held bool
				err := query(func() error {
					return conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&held)
				})
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
				if !standing {
					standing = true
					health.set(group, "")
					logger.InfoContext(ctx, "standing by: another process runs this consumer group", "consumer_group", group)
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
			err := run(ctx, i, func() { health.set(group, "") })
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
