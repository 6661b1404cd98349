package wire

import (
	"time"

	"github.com/herald-notify/herald/apikeys"
)

// APIKey is an API key as operators see it: never its secret, except Token once, when it is made.
type APIKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Token is the whole key, shown only in the answer that creates it.
	Token string `json:"token,omitempty"`
}

// NewAPIKey returns k as operators see it; token is the whole key when k was just made, else "".
func NewAPIKey(k apikeys.Key, token string) APIKey {
	out := APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: make([]string, 0, len(k.Scopes)),
		CreatedAt: k.CreatedAt.UTC(), CreatedBy: k.CreatedBy, Token: token}
	if k.RevokedAt != nil {
		out.RevokedAt = utc(*k.RevokedAt)
	}
	for _, s := range k.Scopes {
		out.Scopes = append(out.Scopes, string(s))
	}
	return out
}
