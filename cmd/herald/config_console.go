package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/console"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/router"
)

// consoleConfig is the operator console's settings: whether the API serves it, and how long its
// sessions last.
type consoleConfig struct {
	Enabled    bool
	SessionTTL time.Duration
	SessionMax time.Duration
}

// register binds the console's settings to the command's flags.
func (c *consoleConfig) register(s *settings) {
	s.Bool(&c.Enabled, "console", "HERALD_CONSOLE", true, "serve the operator console at /console (sign-in with an API key that has the operate scope)")
	s.Duration(&c.SessionTTL, "console-session-ttl", "HERALD_CONSOLE_SESSION_TTL", 30*time.Minute, "how long a console session lasts without use")
	s.Duration(&c.SessionMax, "console-session-max-age", "HERALD_CONSOLE_SESSION_MAX_AGE", 12*time.Hour, "how long a console session lasts at most, however much it is used")
}

// validate checks the console's settings.
func (c consoleConfig) validate() error {
	var errs []error
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("--console-session-ttl %s: want at least 1m", c.SessionTTL))
	}
	if c.SessionMax < c.SessionTTL {
		errs = append(errs, fmt.Errorf("--console-session-max-age %s: want at least --console-session-ttl (%s)", c.SessionMax, c.SessionTTL))
	}
	return errors.Join(errs...)
}

// addConsole serves the operator console beside the API, over the API's own services, and purges
// its expired sessions.
func (cfg *processConfig) addConsole(pr *process, op console.Operator, rebuilds console.Rebuilds) *console.Console {
	sessions := console.NewSessions(pr.pool, cfg.console.SessionTTL, cfg.console.SessionMax)
	pr.add("console session purge", func(ctx context.Context) error { return purgeSessions(ctx, sessions, pr.logger) }, nil)
	keys := apikeys.NewStore(pr.pool)
	amqpURL := cfg.amqp.URL
	return console.New(console.Deps{
		Auth:     keys,
		Sessions: sessions,
		Reader:   projections.NewReader(pr.pool, pr.log),
		Operator: op,
		Rebuilds: rebuilds,
		Keys:     keys,
		Breakers: breakers.New(pr.pool),
		Depths:   func(ctx context.Context) (map[string]int, error) { return router.QueueDepths(ctx, amqpURL) },
	}, pr.logger)
}

// purgeSessions deletes the console's expired sessions every ten minutes until ctx is done.
func purgeSessions(ctx context.Context, sessions *console.Sessions, logger *slog.Logger) error {
	tick := time.NewTicker(10 * time.Minute)
	defer tick.Stop()
	for {
		n, err := sessions.Purge(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.WarnContext(ctx, "purging expired console sessions failed", "error", err)
		case n > 0:
			logger.InfoContext(ctx, "expired console sessions purged", "sessions", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
