package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
)

// Route says where an attempt went: the provider that sent it, or whose error ended it, and the
// providers passed over before that one, in order.
type Route struct {
	Provider       string
	FailedOverFrom []PassedOver
}

// PassedOver is a provider an attempt moved on from, and why: its transient error, or
// ErrCircuitOpen's text when its breaker let nothing through.
type PassedOver struct {
	Provider string
	Error    string
}

// Router is a Provider that may send through one of several providers and says which.
type Router interface {
	Provider
	// SendVia is Send, and the route the attempt took.
	SendVia(ctx context.Context, m Message) (providerMessageID string, route Route, err error)
}

// SendVia sends m through p and returns the route it took: p's own when p is not a Router.
func SendVia(ctx context.Context, p Provider, m Message) (string, Route, error) {
	if r, ok := p.(Router); ok {
		return r.SendVia(ctx, m)
	}
	id, err := p.Send(ctx, m)
	return id, Route{Provider: p.Name()}, err
}

// Failover sends a channel's messages through an ordered list of providers, each behind a
// circuit breaker. An attempt goes to the first provider whose breaker lets it through; a
// transient failure moves it on to the next one, within the same attempt. A permanent error ends
// the attempt where it happened: the next provider would refuse the message the same way. When
// every provider failed or was passed over, the attempt fails with the last one's error, which is
// transient, so the command is retried as any failed attempt.
//
// A permanent error is final only from the first provider tried. Once an earlier provider of the
// attempt failed transiently (or was passed over by its open breaker), a later one's permanent
// refusal (often its own setup: relaying denied, credentials refused) ends the attempt with a
// transient error naming both: without the secondary the primary's outage would have been retried,
// and the primary may be back by the next attempt.
//
// A breaker opens after BreakerConfig.Failures transient failures in a row and passes its
// provider over for BreakerConfig.Timeout; then one trial goes through (half-open), and its
// success closes the breaker: traffic returns to the provider earlier in the list.
type Failover struct {
	channel   herald.Channel
	providers []Provider
	breakers  []*breaker
	// outcomes counts each provider's outcomes, in the order of outcomes.
	outcomes [][len(outcomes)]atomic.Uint64
	// changed is signalled, without blocking, on every breaker's change of state.
	changed chan struct{}
}

var _ Router = (*Failover)(nil)

// Outcomes of a provider in an attempt, as /metrics counts them.
const (
	OutcomeSent      = "sent"
	OutcomeTransient = "transient_error"
	OutcomePermanent = "permanent_error"
	OutcomeSkipped   = "skipped_open"
)

// outcomes lists the outcomes /metrics counts.
var outcomes = [...]string{OutcomeSent, OutcomeTransient, OutcomePermanent, OutcomeSkipped}

// NewFailover returns the failover of channel over providers, tried in the given order. Their
// names must differ: events, metrics and the breakers' table tell them apart by name.
func NewFailover(channel herald.Channel, cfg BreakerConfig, providers ...Provider) (*Failover, error) {
	if len(providers) == 0 {
		return nil, fmt.Errorf("%s failover: no provider", channel)
	}
	f := &Failover{channel: channel, providers: providers, changed: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for _, p := range providers {
		if seen[p.Name()] {
			return nil, fmt.Errorf("%s failover: two providers are named %q", channel, p.Name())
		}
		seen[p.Name()] = true
		f.breakers = append(f.breakers, newBreaker(p.Name(), cfg, f.signal))
	}
	f.outcomes = make([][len(outcomes)]atomic.Uint64, len(providers))
	return f, nil
}

// Name is the first provider's name: the one the channel uses while it is healthy.
func (f *Failover) Name() string { return f.providers[0].Name() }

// Send is SendVia without the route.
func (f *Failover) Send(ctx context.Context, m Message) (string, error) {
	id, _, err := f.SendVia(ctx, m)
	return id, err
}

// SendVia sends m through the first provider that takes it; see Failover.
func (f *Failover) SendVia(ctx context.Context, m Message) (string, Route, error) {
	var route Route
	var lastErr error
	for i, p := range f.providers {
		if i > 0 && ctx.Err() != nil {
			// The attempt's time is up: the next provider would fail for the same reason.
			break
		}
		if lastErr != nil {
			route.FailedOverFrom = append(route.FailedOverFrom, PassedOver{Provider: route.Provider, Error: lastErr.Error()})
		}
		route.Provider = p.Name()
		id, err := f.breakers[i].send(ctx, func() (string, error) { return p.Send(ctx, m) })
		switch {
		case err == nil:
			f.count(i, OutcomeSent)
			return id, route, nil
		case errors.Is(err, ErrCircuitOpen):
			f.count(i, OutcomeSkipped)
			lastErr = fmt.Errorf("%s: %w", p.Name(), err)
		case IsPermanent(err):
			f.count(i, OutcomePermanent)
			if lastErr != nil {
				return "", route, &afterOutage{refusedBy: p.Name(), refused: err, provider: route.FailedOverFrom[len(route.FailedOverFrom)-1].Provider, outage: lastErr}
			}
			return "", route, err
		default:
			f.count(i, OutcomeTransient)
			lastErr = err
		}
	}
	return "", route, lastErr
}

// afterOutage is the transient error of an attempt a provider refused for good after an
// earlier provider failed transiently: the refusal's text, but not its permanence. It unwraps to
// the earlier provider's error.
type afterOutage struct {
	refusedBy string
	refused   error
	provider  string
	outage    error
}

func (e *afterOutage) Error() string {
	return fmt.Sprintf("%s refused: %s (not final: %s failed transiently before it: %s)", e.refusedBy, e.refused, e.provider, e.outage)
}

func (e *afterOutage) Unwrap() error { return e.outage }

// count adds one to the outcome of the i-th provider on /metrics.
func (f *Failover) count(i int, outcome string) {
	f.outcomes[i][slices.Index(outcomes[:], outcome)].Add(1)
}

// Status reports every provider's breaker, in the failover's order.
func (f *Failover) Status() []BreakerStatus {
	out := make([]BreakerStatus, len(f.breakers))
	for i, b := range f.breakers {
		out[i] = b.status()
		out[i].Channel = string(f.channel)
	}
	return out
}

// Changed is signalled when a breaker changes state; a reader that missed several signals gets
// one.
func (f *Failover) Changed() <-chan struct{} { return f.changed }

// signal tells Changed's reader, without waiting for it.
func (f *Failover) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// Metrics returns the collector of the failovers' figures on /metrics: each provider's breaker
// state, read at the scrape, and its outcomes. One collector serves them all, since they share
// the metrics' names.
func Metrics(failovers ...*Failover) prometheus.Collector { return failoverMetrics(failovers) }

type failoverMetrics []*Failover

var (
	breakerStateDesc = prometheus.NewDesc("herald_provider_breaker_state",
		"Circuit breaker state of each provider of a failover list in this process: 0 closed, 1 half-open, 2 open.",
		[]string{"channel", "provider"}, nil)
	providerSendsDesc = prometheus.NewDesc("herald_provider_sends_total",
		"Provider calls of delivery attempts through a failover list, by outcome: sent, transient_error, permanent_error, or skipped_open (its breaker let nothing through).",
		[]string{"channel", "provider", "outcome"}, nil)
)

// Describe is part of prometheus.Collector.
func (m failoverMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerStateDesc
	ch <- providerSendsDesc
}

// Collect is part of prometheus.Collector.
func (m failoverMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, f := range m {
		for i, s := range f.Status() {
			ch <- prometheus.MustNewConstMetric(breakerStateDesc, prometheus.GaugeValue, gauge(s.State), s.Channel, s.Provider)
			for j, outcome := range outcomes {
				ch <- prometheus.MustNewConstMetric(providerSendsDesc, prometheus.CounterValue, float64(f.outcomes[i][j].Load()),
					s.Channel, s.Provider, outcome)
			}
		}
	}
}
