package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/webhooks"
)

// webhookActor names the bench in the endpoints' streams.
const webhookActor = "herald bench"

// webhookEnv is what the spawned processes need to post to the bench's receivers: loopback over
// plain http, which Herald refuses by default, and a retry schedule short enough that the failing
// endpoint's retries happen during the run. --env comes after, and may change them.
var webhookEnv = map[string]string{
	"HERALD_WEBHOOK_ALLOW_PRIVATE":  "true",
	"HERALD_WEBHOOK_ALLOW_HTTP":     "true",
	"HERALD_WEBHOOK_RETRY_SCHEDULE": "1s,2s,4s",
}

// webhookSet is the run's webhook endpoints: a receiver for each, registered in the scratch
// database before Herald starts, so that their live delivery begins before the first event.
type webhookSet struct {
	healthy []*webhookReceiver
	failing *webhookReceiver // nil without --webhook-failing
}

// startWebhooks starts the receivers cfg asks for and registers an endpoint for each, subscribed
// to every notification event. On error, the receivers started are closed again.
func startWebhooks(ctx context.Context, cfg Config, pool *pgxpool.Pool) (_ *webhookSet, err error) {
	ws := &webhookSet{}
	defer func() {
		if err != nil {
			ws.close()
		}
	}()
	store := webhooks.NewEndpoints(pool, webhooks.Policy{AllowPrivate: true, AllowHTTP: true})
	for i := range cfg.Webhooks {
		w, err := startWebhookReceiver(false)
		if err != nil {
			return nil, err
		}
		ws.healthy = append(ws.healthy, w)
		if err := register(ctx, store, w, fmt.Sprintf("herald bench: healthy endpoint %d", i+1)); err != nil {
			return nil, err
		}
	}
	if cfg.WebhookFailing {
		if ws.failing, err = startWebhookReceiver(true); err != nil {
			return nil, err
		}
		if err := register(ctx, store, ws.failing, "herald bench: answers 500 to everything"); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

// register makes w an endpoint of store and gives it the endpoint's secret, which stays in
// memory: the bench never prints it.
func register(ctx context.Context, store *webhooks.Endpoints, w *webhookReceiver, description string) error {
	_, secret, err := store.Create(ctx, webhooks.NewEndpoint{URL: w.url(), Description: description}, webhookActor)
	if err != nil {
		return fmt.Errorf("register webhook endpoint %s: %w", w.url(), err)
	}
	w.setSecret(secret)
	return nil
}

// close stops every receiver.
func (ws *webhookSet) close() {
	for _, w := range ws.healthy {
		w.close()
	}
	if ws.failing != nil {
		ws.failing.close()
	}
}

// notificationEventIDs returns the ids of the notification events in the log: what every healthy
// endpoint, subscribed to all of them, must receive.
func notificationEventIDs(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT event_id::text FROM event_log WHERE event_type = ANY($1)`, events.NotificationTypes)
	if err != nil {
		return nil, fmt.Errorf("read the notification events: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the notification events: %w", err)
	}
	return ids, nil
}

// wait waits until every healthy receiver has had every event of ids, and the failing one a
// first request, for at most limit. It returns how long it waited and whether events were still
// missing at its end. The failing one is not waited for beyond that: Herald stops posting every
// event to an endpoint that fails everything and probes it instead, so most events never reach
// it while it fails (its figures say how many); but a short run could otherwise end before the
// dispatcher took up that endpoint at all.
func (ws *webhookSet) wait(ctx context.Context, ids []string, limit time.Duration, say func(string, ...any)) (time.Duration, bool) {
	start := time.Now()
	want := int64(len(ids) * len(ws.healthy))
	lastSaid := start
	for {
		got := ws.arrived(ids)
		if got >= want && (ws.failing == nil || ws.failing.counts().requests > 0) {
			return time.Since(start), false
		}
		if time.Since(start) >= limit || ctx.Err() != nil {
			return time.Since(start), true
		}
		if time.Since(lastSaid) >= 5*time.Second {
			say("webhooks: %d of %d events arrived", got, want)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// arrived counts the events of ids that reached the healthy receivers, each receiver apart.
func (ws *webhookSet) arrived(ids []string) int64 {
	var n int64
	for _, w := range ws.healthy {
		n += w.countSeen(ids)
	}
	return n
}

// all returns the healthy receivers and the failing one.
func (ws *webhookSet) all() []*webhookReceiver {
	if ws.failing == nil {
		return ws.healthy
	}
	return append(append([]*webhookReceiver(nil), ws.healthy...), ws.failing)
}

// figures is what the receivers counted, against ids, the notification events of the log. Times
// count from firstPost, the start of the load.
func (ws *webhookSet) figures(ids []string, firstPost time.Time, waited time.Duration, timedOut bool) *WebhookFigures {
	f := &WebhookFigures{Endpoints: len(ws.healthy), Expected: int64(len(ids) * len(ws.healthy)),
		WaitSeconds: waited.Seconds(), WaitTimedOut: timedOut}
	latency := NewHistogram()
	var last time.Time
	for _, w := range ws.healthy {
		c := w.counts()
		arrived := w.countSeen(ids)
		f.Arrived += arrived
		f.Unexpected += c.distinct - arrived
		f.Duplicates += c.duplicates
		f.BadSignatures += c.badSignatures
		f.Undecodable += c.undecodable
		latency.Merge(w.latency)
		if c.lastArrival.After(last) {
			last = c.lastArrival
		}
	}
	f.Missing = f.Expected - f.Arrived
	f.EventToArrival = latency.Summary()
	if !last.IsZero() && !firstPost.IsZero() {
		f.Seconds = last.Sub(firstPost).Seconds()
	}
	if f.Seconds > 0 {
		f.ArrivedPerSec = float64(f.Arrived) / f.Seconds
	}
	if ws.failing != nil {
		c := ws.failing.counts()
		f.BadSignatures += c.badSignatures
		f.Undecodable += c.undecodable
		f.Failing = &FailingWebhook{Requests: c.requests, Events: c.distinct, Untried: int64(len(ids)) - ws.failing.countSeen(ids),
			EventToFirstAttempt: ws.failing.latency.Summary()}
	}
	return f
}

// awaitWebhooks waits, after the drain, for the healthy endpoints to have every notification
// event of the log, for at most --drain, and returns the figures. A run that did not settle
// (interrupted, or a process died) is not waited for: its figures are what had arrived.
func (r *runner) awaitWebhooks(ctx context.Context, ws *webhookSet, pool *pgxpool.Pool, settled bool, say func(string, ...any)) (*WebhookFigures, error) {
	var firstPost time.Time
	if v := r.firstPost.Load(); v != 0 {
		firstPost = r.t.at(v)
	}
	// The figures are read even when the run was interrupted: what arrived is worth reporting.
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	r.benchQueries.Add(1)
	ids, err := notificationEventIDs(readCtx, pool)
	if err != nil {
		return nil, err
	}
	var (
		waited   time.Duration
		timedOut bool
	)
	if settled {
		say("waiting up to %s for %d events at each of %d webhook endpoints", r.cfg.Drain, len(ids), len(ws.all()))
		waited, timedOut = ws.wait(ctx, ids, r.cfg.Drain, say)
	} else {
		timedOut = ws.arrived(ids) < int64(len(ids)*len(ws.all()))
	}
	return ws.figures(ids, firstPost, waited, timedOut), nil
}
