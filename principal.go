package herald

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Scope is a permission an API key carries.
type Scope string

const (
	ScopeSend    Scope = "send"    // POST notifications, and cancel the ones the key sent
	ScopeRead    Scope = "read"    // read status, history, events and listings
	ScopeOperate Scope = "operate" // work the poison queue, rebuilds, webhook endpoints and the suppression list over HTTP, and cancel any notification
	// ScopeAdmin is manage API keys: a key that can make keys can make itself a successor, so the
	// power to do so is not handed to every operator's key.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope.
var Scopes = []Scope{ScopeSend, ScopeRead, ScopeOperate, ScopeAdmin}

// ParseScopes reads a comma-separated list of scopes, refusing unknown ones.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, part := range strings.Split(s, ",") {
		sc := Scope(strings.TrimSpace(part))
		if sc == "" {
			continue
		}
		if !slices.Contains(Scopes, sc) {
			return nil, Invalid("unknown scope", map[string]string{"scopes": fmt.Sprintf("%q is not a scope: want send, read, operate or admin", sc)})
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, Invalid("no scope", map[string]string{"scopes": "name at least one of send, read, operate, admin"})
	}
	return out, nil
}

// Principal is who a request acts for: the API key it presented.
type Principal struct {
	KeyID  string
	Name   string
	Scopes []Scope
}

// Can reports whether p carries scope s.
func (p Principal) Can(s Scope) bool { return slices.Contains(p.Scopes, s) }

// Actor names p in the log: "apikey:<name>".
func (p Principal) Actor() string { return "apikey:" + p.Name }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
