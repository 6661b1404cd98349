// Package breakers keeps, in PostgreSQL, the state of the circuit breakers of every worker
// process's providers, so that one command can show them all: a breaker lives in the memory of
// the process whose attempts it guards (see delivery.Failover).
package breakers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/delivery"
)

// maxLastError caps the error kept per provider: enough to say what went wrong.
const maxLastError = 500

// forgetAfter is how long the rows of a process not heard from are kept.
const forgetAfter = 24 * time.Hour

// Store reads and writes the breakers' table.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Row is one provider's breaker in one process, as it last wrote it.
type Row struct {
	Process             string
	Channel             string
	Provider            string
	State               string
	ConsecutiveFailures int
	LastError           string
	ChangedAt           time.Time
	UpdatedAt           time.Time
	// Stale is true when the process has not written for longer than List's staleAfter: it
	// stopped without saying so, or cannot reach the database.
	Stale bool
}

// Publish writes process's breakers, and forgets the rows of processes not heard from for a day.
func (s *Store) Publish(ctx context.Context, process string, statuses []delivery.BreakerStatus) error {
	b := &pgx.Batch{}
	for _, st := range statuses {
		lastErr := clip(st.LastError)
		b.Queue(`INSERT INTO provider_breakers (process, channel, provider, state, consecutive_failures, last_error, changed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now())
			ON CONFLICT (process, channel, provider) DO UPDATE SET state = excluded.state,
				consecutive_failures = excluded.consecutive_failures, last_error = excluded.last_error,
				changed_at = excluded.changed_at, updated_at = excluded.updated_at`,
			process, st.Channel, st.Provider, st.State, st.ConsecutiveFailures, lastErr, st.ChangedAt)
	}
	b.Queue(`DELETE FROM provider_breakers WHERE updated_at < now() - $1 * interval '1 second'`, forgetAfter.Seconds())
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("publish breakers of %s: %w", process, err)
	}
	return nil
}

// Forget deletes process's rows: it stops, and its breakers with it.
func (s *Store) Forget(ctx context.Context, process string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM provider_breakers WHERE process = $1`, process); err != nil {
		return fmt.Errorf("forget breakers of %s: %w", process, err)
	}
	return nil
}

// List returns every row, by channel, provider and process, marking stale those not written for
// staleAfter, judged on the database's clock.
func (s *Store) List(ctx context.Context, staleAfter time.Duration) ([]Row, error) {
	rows, err := s.pool.Query(ctx, `SELECT process, channel, provider, state, consecutive_failures, last_error,
			changed_at, updated_at, updated_at < now() - $1 * interval '1 second'
		FROM provider_breakers ORDER BY channel, provider, process`, staleAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("list breakers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
		var x Row
		err := r.Scan(&x.Process, &x.Channel, &x.Provider, &x.State, &x.ConsecutiveFailures, &x.LastError,
			&x.ChangedAt, &x.UpdatedAt, &x.Stale)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list breakers: %w", err)
	}
	return out, nil
}

// Source is what Run publishes: a failover's breakers and the signal of their changes.
type Source interface {
	Status() []delivery.BreakerStatus
	Changed() <-chan struct{}
}

var _ Source = (*delivery.Failover)(nil)

// Run publishes the breakers of sources as process every interval, and at once when one changes
// state (logging the change), until ctx ends; then it forgets them. A failed write is logged and tried again at the
// next turn: the breakers work whether or not they are seen.
func (s *Store) Run(ctx context.Context, process string, sources []Source, interval time.Duration, logger *slog.Logger) error {
	changed := make(chan struct{}, 1)
	for _, src := range sources {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-src.Changed():
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	// Each change of state is logged once, here, where the states are read: a breaker that
	// opens is what an operator wants to hear about.
	last := map[[2]string]string{}
	publish := func() {
		var all []delivery.BreakerStatus
		for _, src := range sources {
			all = append(all, src.Status()...)
		}
		for _, st := range all {
			key := [2]string{st.Channel, st.Provider}
			if prev, seen := last[key]; seen && prev != st.State {
				level := slog.LevelInfo
				if st.State == delivery.BreakerOpen {
					level = slog.LevelWarn
				}
				logger.Log(ctx, level, "provider circuit breaker changed state", "channel", st.Channel, "provider", st.Provider,
					"from", prev, "to", st.State, "consecutive_failures", st.ConsecutiveFailures, "last_error", st.LastError)
			}
			last[key] = st.State
		}
		wctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		if err := s.Publish(wctx, process, all); err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			logger.WarnContext(ctx, "recording the circuit breakers' state failed", "error", err)
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		publish()
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.Forget(fctx, process); err != nil {
				logger.WarnContext(fctx, "forgetting the circuit breakers' state failed", "error", err)
			}
			return nil
		case <-tick.C:
		case <-changed:
		}
	}
}

// clip cuts an error to maxLastError bytes on a character boundary, as valid UTF-8 without NUL,
// which PostgreSQL's text refuses: an error cut mid-character failed the whole batch, and with it
// every breaker of the process.
func clip(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= maxLastError {
		return s
	}
	cut := maxLastError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
