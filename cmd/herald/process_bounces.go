package main

import (
	"context"

	"github.com/herald-notify/herald/bounces"
	"github.com/herald-notify/herald/suppressions"
)

// bounceSuppressor is what the bounce listener tells of every hard bounce and complaint, in the
// transaction that records it, so that the recipient is not sent to again: the suppression list.
func bounceSuppressor(pr *process) bounces.Suppressor { return suppressions.New(pr.pool) }

// addBounceListener adds the inbound SMTP listener of the bounce domain.
func (cfg *processConfig) addBounceListener(pr *process) error {
	rec := bounces.NewRecorder(pr.pool, bounces.RecorderConfig{
		Suppressor: bounceSuppressor(pr), Metrics: bounces.NewMetrics(pr.reg), Logger: pr.logger,
	})
	l, err := bounces.NewListener(rec, bounces.NewStore(pr.pool), bounces.ListenerConfig{
		Domain: cfg.bounces.Domain, MaxMessageBytes: int64(cfg.bounces.MaxSize), Retention: cfg.bounces.Retention,
		Logger: pr.logger,
	})
	if err != nil {
		return err
	}
	addr := cfg.bounces.Addr
	pr.add("bounce listener", func(ctx context.Context) error { return l.Run(ctx, addr) }, l.Ready)
	return nil
}
