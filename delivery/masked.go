package delivery

import (
	"context"

	"github.com/herald-notify/herald/redact"
)

// Masked returns p with secrets masked in the errors it returns. A provider's error is recorded
// in the event log and shown to API clients and operators, and it may quote what a server
// answered — an answer that can echo the credentials it refused. Permanent and the rest of the
// error's chain still hold.
func Masked(p Provider, secrets *redact.Secrets) Provider {
	return &masked{Provider: p, secrets: secrets}
}

type masked struct {
	Provider
	secrets *redact.Secrets
}

func (m *masked) Send(ctx context.Context, msg Message) (string, error) {
	id, err := m.Provider.Send(ctx, msg)
	return id, m.secrets.Error(err)
}
