package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed webhook, named by the Standard Webhooks specification.
const (
	// HeaderID carries the message id: the same on every retry and replay of one message, so that
	// a receiver can drop what it has already handled.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the signing time in Unix seconds; receivers refuse old ones, which
	// bounds how long a captured request can be replayed.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries one "v1,<base64>" signature per signing secret, space separated.
	HeaderSignature = "webhook-signature"
)

// signatureVersion tags an HMAC-SHA256 signature in the signature header.
const signatureVersion = "v1"

// Errors Verify returns, for a receiver to tell a forgery from a clock problem (errors.Is).
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhook: timestamp is not Unix seconds")
	ErrTooOld         = errors.New("webhook: timestamp too old")
	ErrTooNew         = errors.New("webhook: timestamp too far in the future")
	ErrNoSignature    = errors.New("webhook: no signature matches")
	ErrNoSecret       = errors.New("webhook: no secret to verify with")
)

// Sign returns the webhook-signature header of body sent as message msgID at ts: one signature per
// secret, so that while an endpoint's secret is being rotated the receiver may check with either
// the new or the old one. Zero secrets are skipped.
func Sign(msgID string, ts time.Time, body []byte, secrets ...Secret) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s.IsZero() {
			continue
		}
		sigs = append(sigs, signatureVersion+","+signature(s, msgID, ts.Unix(), body))
	}
	return strings.Join(sigs, " ")
}

// Headers returns the three headers that go with body on the request: the id, the timestamp and
// the signatures.
func Headers(msgID string, ts time.Time, body []byte, secrets ...Secret) http.Header {
	h := make(http.Header, 3)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(msgID, ts, body, secrets...))
	return h
}

// Verify checks a received webhook as a receiver must: the headers are present, the timestamp is
// within tolerance of now (either way), and one of the header's v1 signatures is the HMAC of
// "id.timestamp.body" under one of secrets. Signatures of other versions are ignored. Comparison is
// in constant time. The errors wrap the Err values above.
func Verify(header http.Header, body []byte, tolerance time.Duration, now time.Time, secrets ...Secret) error {
	id, tsText, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBadTimestamp, tsText)
	}
	ts := time.Unix(unix, 0)
	if now.Sub(ts) > tolerance {
		return fmt.Errorf("%w: signed at %s, %s ago", ErrTooOld, ts.UTC().Format(time.RFC3339), now.Sub(ts).Round(time.Second))
	}
	if ts.Sub(now) > tolerance {
		return fmt.Errorf("%w: signed at %s, %s ahead", ErrTooNew, ts.UTC().Format(time.RFC3339), ts.Sub(now).Round(time.Second))
	}
	if !anyMatches(strings.Fields(sigs), id, unix, body, secrets) {
		if len(secrets) == 0 {
			return ErrNoSecret
		}
		return ErrNoSignature
	}
	return nil
}

// anyMatches reports whether one of the received signatures sigs ("v1,<base64>") is the signature
// of the message under one of secrets.
func anyMatches(sigs []string, id string, unix int64, body []byte, secrets []Secret) bool {
	for _, s := range secrets {
		if s.IsZero() {
			continue
		}
		want := []byte(signature(s, id, unix, body))
		for _, sig := range sigs {
			version, got, ok := strings.Cut(sig, ",")
			if ok && version == signatureVersion && hmac.Equal([]byte(got), want) {
				return true
			}
		}
	}
	return false
}

// signature is the base64 HMAC-SHA256, under s, of the signed content "id.timestamp.body".
func signature(s Secret, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, s.bytes())
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, unix, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
