package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// secretPrefix marks a Standard Webhooks signing secret, so that one is recognised in a
// configuration or a leaked log, and so that receivers' libraries accept it as it is.
const secretPrefix = "whsec_"

// masked is what a Secret prints in place of itself.
const masked = secretPrefix + "xxxxx"

const (
	// newSecretBytes is the length of a key NewSecret makes (the specification allows 24 to 64).
	newSecretBytes = 32
	// minSecretBytes is the shortest key the specification allows.
	minSecretBytes = 24
)

// Secret is an endpoint's signing key. It never prints itself — fmt, slog and encoding/json all see
// a masked form — so that a key cannot leak through a log line or an API answer by accident;
// Reveal gives the text where it must be shown or stored.
//
// The key sits behind a pointer so that even a Secret in an unexported field of another struct,
// which fmt prints by reflection without calling String, shows as an address and not as bytes.
type Secret struct {
	k *key
}

// key is a Secret's bytes.
type key struct{ b []byte }

// NewSecret makes a secret of 32 random bytes, for an endpoint being registered.
func NewSecret() (Secret, error) {
	b := make([]byte, newSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return Secret{}, fmt.Errorf("new webhook secret: %w", err)
	}
	return Secret{k: &key{b: b}}, nil
}

// ParseSecret reads a secret as Reveal wrote it ("whsec_" and the standard base64 of the key).
// Its errors never quote s, since s is the secret.
func ParseSecret(s string) (Secret, error) {
	encoded, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return Secret{}, errors.New("parse webhook secret: does not start with " + secretPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// err quotes the offending byte and its offset: a piece of the secret, so it is left out.
		return Secret{}, errors.New("parse webhook secret: not standard base64 after " + secretPrefix)
	}
	if len(b) < minSecretBytes {
		return Secret{}, fmt.Errorf("parse webhook secret: key of %d bytes, at least %d needed", len(b), minSecretBytes)
	}
	return Secret{k: &key{b: b}}, nil
}

// Reveal returns the secret's full text: for the one answer that shows it on creation, and for
// storage.
func (s Secret) Reveal() string {
	return secretPrefix + base64.StdEncoding.EncodeToString(s.bytes())
}

// String masks the secret, for %v and %s.
func (s Secret) String() string { return masked }

// GoString masks the secret, for %#v.
func (s Secret) GoString() string { return masked }

// LogValue masks the secret in slog's output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(masked) }

// MarshalJSON masks the secret: a shape that must carry the key does so through Reveal, on purpose.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + masked + `"`), nil }

// IsZero reports whether s holds no key (the zero Secret), which cannot sign.
func (s Secret) IsZero() bool { return len(s.bytes()) == 0 }

// bytes is the key, nil for the zero Secret.
func (s Secret) bytes() []byte {
	if s.k == nil {
		return nil
	}
	return s.k.b
}

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ slog.LogValuer = Secret{}
)
