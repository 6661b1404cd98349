package main

import (
	"context"

	"github.com/herald-notify/herald/webhooks"
)

// webhookSender returns the sender the dispatcher and the API's replays post through.
func (cfg *processConfig) webhookSender(pr *process) *webhooks.Sender {
	if pr.webhookSender != nil {
		return pr.webhookSender
	}
	schedule, _ := cfg.webhooks.schedule() // validated
	endpoints := webhooks.NewEndpoints(pr.pool, cfg.webhooks.policy())
	pr.webhookSender = webhooks.NewSender(pr.pool, endpoints, webhooks.SenderConfig{
		Client: cfg.webhooks.client(), Schedule: schedule, DisableAfter: cfg.webhooks.DisableAfter,
		Metrics: webhooks.NewMetrics(pr.reg), Logger: pr.logger,
	})
	return pr.webhookSender
}

// addDispatcher adds the webhook dispatcher.
func (cfg *processConfig) addDispatcher(pr *process) {
	d := webhooks.NewDispatcher(pr.pool, cfg.webhookSender(pr), webhooks.DispatcherConfig{
		Owner: dispatcherOwner(), Lanes: cfg.webhooks.Lanes, Poll: cfg.webhooks.Poll, Lease: cfg.webhooks.Lease,
		RequestTimeout: cfg.webhooks.Timeout, Logger: pr.logger,
	})
	pr.add("webhooks", d.Run, func(context.Context) error { return d.Ready() })
}
