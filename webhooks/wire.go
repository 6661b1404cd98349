package webhooks

import (
	"time"

	"github.com/herald-notify/herald/wire"
)

// The constructors of wire's webhook shapes: the one place an endpoint, an attempt or a replay
// becomes what the API answers and what `herald webhooks … -o json` prints. They live here, not
// in wire, because this package posts wire.WebhookPayload and so imports wire.

// WireEndpoint returns e as users see it, without its secret; pending, when not nil, is its count
// of deliveries waiting for a retry.
func WireEndpoint(e Endpoint, pending *int64) wire.WebhookEndpoint {
	types := append([]string{}, e.EventTypes...)
	var checkpointSeq *int64
	if e.TakesCheckpoints() {
		checkpointSeq = &e.CheckpointSeq
	}
	return wire.WebhookEndpoint{
		ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: types, AllEvents: len(types) == 0,
		Enabled: e.Enabled, DisabledReason: e.DisabledReason, Version: e.Version,
		CreatedAt: e.CreatedAt.UTC(), CreatedBy: e.CreatedBy, UpdatedAt: e.UpdatedAt.UTC(),
		PreviousSecretValidUntil: utcPtr(e.PreviousSecretUntil), Position: e.Position,
		FailingSince: utcPtr(e.FailingSince), LastSuccessAt: utcPtr(e.LastSuccessAt), RetriesPending: pending,
		CheckpointSeq: checkpointSeq,
		Links:         wire.WebhookEndpointLinksFor(e.ID),
	}
}

// WireEndpointCreated returns e with its secret revealed: only for the answer to a creation or
// a rotation, the one time the secret is shown.
func WireEndpointCreated(e Endpoint, secret Secret) wire.WebhookEndpointCreated {
	return wire.WebhookEndpointCreated{WebhookEndpoint: WireEndpoint(e, nil), Secret: secret.Reveal()}
}

// WireEndpointList returns list as users see it, never null.
func WireEndpointList(list []Endpoint) wire.WebhookEndpointList {
	out := wire.WebhookEndpointList{Endpoints: make([]wire.WebhookEndpoint, 0, len(list))}
	for _, e := range list {
		out.Endpoints = append(out.Endpoints, WireEndpoint(e, nil))
	}
	return out
}

// WireAttempt returns a as users see it.
func WireAttempt(a Attempt) wire.WebhookAttempt {
	out := wire.WebhookAttempt{
		ID: a.ID, EndpointID: a.EndpointID, EventID: a.EventID, EventPosition: a.EventPosition, EventType: a.EventType,
		NotificationID: a.NotificationID, Attempt: a.Attempt, Trigger: a.Trigger, AttemptedAt: a.At.UTC(),
		DurationSeconds: a.Duration.Seconds(), Succeeded: a.Succeeded, Error: a.Error, Response: a.Response,
	}
	if a.StatusCode != 0 {
		code := a.StatusCode
		out.StatusCode = &code
	}
	return out
}

// WireAttempts returns a page of attempts, continued before the attempt next (0 on the last
// page), without the API path of the next page.
func WireAttempts(list []Attempt, next int64) wire.WebhookAttempts {
	out := wire.WebhookAttempts{Attempts: make([]wire.WebhookAttempt, 0, len(list)), NextBefore: next}
	for _, a := range list {
		out.Attempts = append(out.Attempts, WireAttempt(a))
	}
	return out
}

// WireReplayReport returns r as users see it.
func WireReplayReport(r ReplayReport) wire.WebhookReplayReport {
	return wire.WebhookReplayReport{
		EndpointID: r.EndpointID, FromPosition: r.FromPosition, ToPosition: r.ToPosition, DryRun: r.DryRun,
		Matched: r.Matched, Sent: r.Sent, Failed: r.Failed, DurationSeconds: r.Duration.Seconds(),
	}
}

// WireReplayJob returns j as users see it: its report once it succeeded, its error once it failed.
func WireReplayJob(j ReplayJob) wire.WebhookReplayJob {
	var since, until *time.Time
	if !j.Request.Since.IsZero() {
		since = utcPtr(&j.Request.Since)
	}
	if !j.Request.Until.IsZero() {
		until = utcPtr(&j.Request.Until)
	}
	p := j.Progress
	out := wire.WebhookReplayJob{
		ID: j.ID, EndpointID: j.EndpointID, State: j.State, StartedAt: j.StartedAt.UTC(), Error: j.Error,
		Request: wire.WebhookReplayRequest{FromPosition: j.Request.FromPosition, Since: since, Until: until,
			Types: append([]string{}, j.Request.Types...), DryRun: j.Request.DryRun},
		Progress: wire.WebhookReplayProgress{Position: p.Position, ToPosition: p.ToPosition, Matched: p.Matched, Sent: p.Sent, Failed: p.Failed},
		Links:    wire.JobLinks{Self: wire.WebhookReplayJobPath(j.EndpointID, j.ID)},
	}
	if !j.EndedAt.IsZero() {
		out.EndedAt = utcPtr(&j.EndedAt)
	}
	if j.State == ReplaySucceeded {
		rep := WireReplayReport(j.Report)
		out.Report = &rep
	}
	return out
}

// utcPtr returns a copy of *t in UTC, or nil for none.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
