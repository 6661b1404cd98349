package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// component is one long-running part of a process: the HTTP server, the relay, the workers...
// run returns when ctx is done and its work in flight is finished or handed back.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// runComponents starts components in order and runs them until ctx is done or one of them fails,
// then stops them in reverse order — the HTTP server stops taking requests before the relay and
// workers it feeds stop — each within grace.
func runComponents(ctx context.Context, logger *slog.Logger, grace time.Duration, comps ...component) error {
	type running struct {
		component
		cancel context.CancelFunc
		done   chan error
	}
	failed := make(chan error, len(comps))
	var started []running
	for _, c := range comps {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := running{component: c, cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := runRecovered(cctx, c)
			if err != nil {
				err = fmt.Errorf("%s: %w", c.name, err)
				failed <- err
			} else if cctx.Err() == nil {
				// A component that stops on its own leaves the process half alive: stop it all.
				failed <- fmt.Errorf("%s stopped unexpectedly", c.name)
			}
			r.done <- err
		}()
		started = append(started, r)
		logger.InfoContext(ctx, "started", "component", c.name)
	}

	var cause error
	select {
	case <-ctx.Done():
		logger.InfoContext(ctx, "shutting down")
	case cause = <-failed:
		logger.ErrorContext(ctx, "shutting down after a failure", "error", cause)
	}

	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, cause) && cause == nil {
				cause = err
			}
			logger.Info("stopped", "component", r.name)
		case <-time.After(grace):
			logger.Error("did not stop in time", "component", r.name, "grace", grace)
			if cause == nil {
				cause = fmt.Errorf("%s did not stop within %s", r.name, grace)
			}
		}
	}
	return cause
}

// runRecovered runs c, turning a panic into its error: the process then stops in order, and the
// panic's message reaches the log through the masking of secrets instead of being printed by the
// runtime as it is.
func runRecovered(ctx context.Context, c component) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.run(ctx)
}

// httpComponent serves handler on addr; on stop it finishes the requests in flight.
func httpComponent(name, addr string, handler http.Handler, logger *slog.Logger) (component, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return component{}, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return component{name: name, run: func(ctx context.Context) error {
		logger.InfoContext(ctx, "listening", "component", name, "addr", ln.Addr().String())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}}, nil
}
