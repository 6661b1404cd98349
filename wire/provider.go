package wire

import (
	"time"

	"github.com/herald-notify/herald/breakers"
)

// The shape of `herald providers status -o json`, and its constructor from the breakers package's
// rows: the one place a provider's breaker state becomes what the CLI prints.

// ProviderStatus is one provider's circuit breaker in one worker process, as that process last
// recorded it.
type ProviderStatus struct {
	// Process is the worker, as host/pid: the worker that NotificationProcessing names.
	Process  string `json:"process"`
	Channel  string `json:"channel"`
	Provider string `json:"provider"`
	// State is closed (traffic flows), open (the provider is passed over) or half-open (one
	// trial goes through to see whether it recovered).
	State string `json:"state"`
	// ConsecutiveFailures counts its transient failures since it last answered.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// LastError is its latest transient error, secrets masked; omitted when it has had none.
	LastError string `json:"last_error,omitempty"`
	// ChangedAt is when the breaker last changed state, or the process started.
	ChangedAt time.Time `json:"changed_at"`
	// UpdatedAt is when the process last recorded it.
	UpdatedAt time.Time `json:"updated_at"`
	// Stale is true when the process has not recorded it for longer than --stale-after: it
	// stopped without saying so, or cannot reach the database, and State may be out of date.
	Stale bool `json:"stale"`
}

// ProviderStatusList is every provider's breaker in every worker process that recorded one.
type ProviderStatusList struct {
	Providers []ProviderStatus `json:"providers"`
}

// NewProviderStatusList returns the list of rows, in their order.
func NewProviderStatusList(rows []breakers.Row) ProviderStatusList {
	out := ProviderStatusList{Providers: make([]ProviderStatus, len(rows))}
	for i, r := range rows {
		out.Providers[i] = ProviderStatus{Process: r.Process, Channel: r.Channel, Provider: r.Provider, State: r.State,
			ConsecutiveFailures: r.ConsecutiveFailures, LastError: r.LastError, ChangedAt: r.ChangedAt.UTC(),
			UpdatedAt: r.UpdatedAt.UTC(), Stale: r.Stale}
	}
	return out
}
