package receipts

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/herald-notify/herald/redact"
)

// Where the gateway posts, under the public URL Herald is reached at.
const (
	// StatusPath receives the status callbacks of the messages Herald sent.
	StatusPath = "/api/v1/receipts/sms"
	// InboundPath receives the messages recipients send to Herald's number.
	InboundPath = "/api/v1/receipts/sms/inbound"
)

// SignatureHeader carries the gateway's signature of a request.
const SignatureHeader = "X-Twilio-Signature"

// ParsePublicURL checks the base URL the gateway reaches Herald's API at (e.g.
// https://herald.example.com, or https://example.com/herald behind a proxy that strips the
// prefix) and returns it without a trailing slash. It must be an absolute http or https URL with
// a host and without a query or a fragment. It may carry credentials, for a proxy in front of
// Herald that asks the gateway for them (HTTP basic auth); errors never show the password.
func ParsePublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	shown := redact.URL(s)
	switch {
	case s == "":
		return "", errors.New("is empty")
	case err != nil:
		return "", fmt.Errorf("%q does not parse as a URL", shown)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: want an http or https URL, such as https://herald.example.com", shown)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%q: a public URL has no query or fragment", shown)
	}
	return strings.TrimRight(s, "/"), nil
}

// StatusCallbackURL is the URL a message's status reports go to, for the public URL base (as
// ParsePublicURL returns it).
func StatusCallbackURL(base string) string { return base + StatusPath }

// Sign returns the gateway's signature of a POST to fullURL with the form params: base64 of the
// HMAC-SHA1, keyed with the auth token, of the URL followed by each parameter's name and value,
// in the order of their names (a name given several values comes once per value, its values in
// order). This is Twilio's scheme for form-encoded webhooks.
func Sign(authToken, fullURL string, params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(fullURL))
	for _, name := range names {
		values := append([]string(nil), params[name]...)
		sort.Strings(values)
		for _, v := range values {
			mac.Write([]byte(name))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verifier checks that a request comes from the gateway: that it carries the signature of the
// URL the gateway posted to — the public URL, whatever scheme and host a proxy in front of
// Herald changed — and of its form, by the account's auth token.
type Verifier struct {
	// bases are the public URL as given and, when it carries credentials, without them: which
	// of the two a gateway signs is its own affair, and either takes the token to sign.
	bases []string
	token string
}

// NewVerifier returns a verifier for requests the gateway posts under the public URL base,
// signed with authToken. Both are required.
func NewVerifier(base, authToken string) (*Verifier, error) {
	b, err := ParsePublicURL(base)
	if err != nil {
		return nil, fmt.Errorf("public url: %w", err)
	}
	if authToken == "" {
		return nil, errors.New("the gateway's auth token is required to verify its signatures")
	}
	v := &Verifier{bases: []string{b}, token: authToken}
	if u, err := url.Parse(b); err == nil && u.User != nil {
		u.User = nil
		v.bases = append(v.bases, u.String())
	}
	return v, nil
}

// Verify reports whether signature is the gateway's signature of a POST of params to the
// request URI requestURI (path and query as received). The comparison takes the same time
// whatever the signature.
func (v *Verifier) Verify(requestURI string, params url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	ok := false
	for _, base := range v.bases {
		want := Sign(v.token, base+requestURI, params)
		ok = hmac.Equal([]byte(want), []byte(signature)) || ok
	}
	return ok
}
