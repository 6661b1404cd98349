package webhooks_test

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/herald-notify/herald/webhooks"
)

// The published test vector of the Standard Webhooks reference libraries: TestWebhookSign in
// github.com/standard-webhooks/standard-webhooks, libraries/go/webhook_test.go (v1.3.0), the same
// secret, id and timestamp as the specification's examples.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorUnix      = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// mustSecret parses text or fails the test.
func mustSecret(t *testing.T, text string) webhooks.Secret {
	t.Helper()
	s, err := webhooks.ParseSecret(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newSecret makes a fresh secret or fails the test.
func newSecret(t *testing.T) webhooks.Secret {
	t.Helper()
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignMatchesThePublishedVector(t *testing.T) {
	got := webhooks.Sign(vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody), mustSecret(t, vectorSecret))
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorUnix))
	h.Set("webhook-signature", vectorSignature)
	if err := webhooks.Verify(h, []byte(vectorBody), time.Minute, time.Unix(vectorUnix, 0), mustSecret(t, vectorSecret)); err != nil {
		t.Fatalf("Verify of the published vector: %v", err)
	}
}

func TestHeadersSetIDTimestampAndOneSignaturePerSecret(t *testing.T) {
	oldS, newS := newSecret(t), newSecret(t)
	ts := time.Date(2026, 12, 5, 10, 0, 0, 900, time.UTC)
	h := webhooks.Headers("evt_1", ts, []byte("{}"), newS, oldS)
	if got := h.Get("webhook-id"); got != "evt_1" {
		t.Errorf("webhook-id = %q", got)
	}
	if got := h.Get("webhook-timestamp"); got != strconv.FormatInt(ts.Unix(), 10) {
		t.Errorf("webhook-timestamp = %q, want Unix seconds %d", got, ts.Unix())
	}
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	want := []string{webhooks.Sign("evt_1", ts, []byte("{}"), newS), webhooks.Sign("evt_1", ts, []byte("{}"), oldS)}
	if len(sigs) != 2 || sigs[0] != want[0] || sigs[1] != want[1] {
		t.Errorf("webhook-signature = %q, want %q", sigs, want)
	}
}

// TestLibraryVerifiesHerald proves that a receiver using the independent Go library of the
// specification accepts what Herald sends, including during a rotation, and refuses tampering.
func TestLibraryVerifiesHerald(t *testing.T) {
	oldS, newS := newSecret(t), newSecret(t)
	body := []byte(`{"type":"NotificationSent","data":{}}`)
	now := time.Now()
	library := func(s webhooks.Secret) *standardwebhooks.Webhook {
		wh, err := standardwebhooks.NewWebhook(s.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		return wh
	}
	tests := []struct {
		name     string
		signWith []webhooks.Secret
		tamper   func(h http.Header, body []byte) []byte
		verifier webhooks.Secret
		ok       bool
	}{
		{name: "one secret", signWith: []webhooks.Secret{newS}, verifier: newS, ok: true},
		{name: "rotation, receiver has the new secret", signWith: []webhooks.Secret{newS, oldS}, verifier: newS, ok: true},
		{name: "rotation, receiver still has the old secret", signWith: []webhooks.Secret{newS, oldS}, verifier: oldS, ok: true},
		{name: "another secret", signWith: []webhooks.Secret{newS}, verifier: oldS},
		{name: "tampered body", signWith: []webhooks.Secret{newS}, verifier: newS, tamper: func(_ http.Header, b []byte) []byte {
			return []byte(strings.Replace(string(b), "Sent", "Fail", 1))
		}},
		{name: "tampered id", signWith: []webhooks.Secret{newS}, verifier: newS, tamper: func(h http.Header, b []byte) []byte {
			h.Set("webhook-id", "evt_2")
			return b
		}},
		{name: "tampered timestamp", signWith: []webhooks.Secret{newS}, verifier: newS, tamper: func(h http.Header, b []byte) []byte {
			h.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10))
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := webhooks.Headers("evt_1", now, body, tc.signWith...)
			got := append([]byte(nil), body...)
			if tc.tamper != nil {
				got = tc.tamper(h, got)
			}
			err := library(tc.verifier).Verify(got, h)
			if tc.ok && err != nil {
				t.Fatalf("library refused Herald's request: %v", err)
			}
			if !tc.ok && !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
				t.Fatalf("library: %v, want no matching signature", err)
			}
		})
	}
}

// TestHeraldVerifiesLibrary proves the reverse: Verify accepts what the specification's library
// signs, and refuses it once tampered with or out of tolerance.
func TestHeraldVerifiesLibrary(t *testing.T) {
	oldS, newS := newSecret(t), newSecret(t)
	body := []byte(`{"hello":"world"}`)
	now := time.Unix(1_800_000_000, 0)
	signed := func(s webhooks.Secret, id string, ts time.Time) http.Header {
		wh, err := standardwebhooks.NewWebhook(s.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		sig, err := wh.Sign(id, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	withHeader := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	good := signed(newS, "evt_1", now)
	tests := []struct {
		name    string
		header  http.Header
		body    string
		secrets []webhooks.Secret
		want    error
	}{
		{name: "library signature", header: good, secrets: []webhooks.Secret{newS}},
		{name: "rotation: either secret verifies", header: good, secrets: []webhooks.Secret{oldS, newS}},
		{name: "rotation: both signatures sent, old secret held",
			header:  withHeader(good, "webhook-signature", good.Get("webhook-signature")+" "+signed(oldS, "evt_1", now).Get("webhook-signature")),
			secrets: []webhooks.Secret{oldS}},
		{name: "unknown versions and garbage beside a good signature are ignored",
			header: withHeader(good, "webhook-signature", "v2,abc ,,, v1,not-base64 "+good.Get("webhook-signature")), secrets: []webhooks.Secret{newS}},
		{name: "the right signature under another version tag",
			header:  withHeader(good, "webhook-signature", strings.Replace(good.Get("webhook-signature"), "v1,", "v2,", 1)),
			secrets: []webhooks.Secret{newS}, want: webhooks.ErrNoSignature},
		{name: "wrong secret", header: good, secrets: []webhooks.Secret{oldS}, want: webhooks.ErrNoSignature},
		{name: "no secret", header: good, want: webhooks.ErrNoSecret},
		{name: "tampered body", header: good, body: `{"hello":"there"}`, secrets: []webhooks.Secret{newS}, want: webhooks.ErrNoSignature},
		{name: "tampered id", header: withHeader(good, "webhook-id", "evt_2"), secrets: []webhooks.Secret{newS}, want: webhooks.ErrNoSignature},
		{name: "tampered timestamp", header: withHeader(good, "webhook-timestamp", strconv.FormatInt(now.Unix()-1, 10)),
			secrets: []webhooks.Secret{newS}, want: webhooks.ErrNoSignature},
		{name: "too old", header: signed(newS, "evt_1", now.Add(-6*time.Minute)), secrets: []webhooks.Secret{newS}, want: webhooks.ErrTooOld},
		{name: "too new", header: signed(newS, "evt_1", now.Add(6*time.Minute)), secrets: []webhooks.Secret{newS}, want: webhooks.ErrTooNew},
		{name: "at the edge of tolerance", header: signed(newS, "evt_1", now.Add(-5*time.Minute)), secrets: []webhooks.Secret{newS}},
		{name: "timestamp not a number", header: withHeader(good, "webhook-timestamp", "2026-12-05"), secrets: []webhooks.Secret{newS}, want: webhooks.ErrBadTimestamp},
		{name: "missing signature", header: withHeader(good, "webhook-signature", ""), secrets: []webhooks.Secret{newS}, want: webhooks.ErrMissingHeaders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if tc.body != "" {
				b = []byte(tc.body)
			}
			err := webhooks.Verify(tc.header, b, 5*time.Minute, now, tc.secrets...)
			if tc.want == nil && err != nil {
				t.Fatalf("Verify: %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDocsExampleIsSignedAsShown holds the signed request shown in docs/api.md to what Sign
// produces, so that the example a receiver tests against stays true.
func TestDocsExampleIsSignedAsShown(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(doc), "POST <your endpoint>\n")
	if !ok {
		t.Fatal("docs/api.md: no example request")
	}
	example, _, _ = strings.Cut(example, "\n```")
	head, body, ok := strings.Cut(example, "\n\n")
	if !ok {
		t.Fatal("docs/api.md: example request without a body")
	}
	h := http.Header{}
	for _, line := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		h.Set(k, v)
	}
	unix, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	got := webhooks.Sign(h.Get("webhook-id"), time.Unix(unix, 0), []byte(body),
		mustSecret(t, vectorSecret), mustSecret(t, "whsec_c2Vjb25kLXNlY3JldC1mb3ItZG9jcy1vbmx5"))
	if want := h.Get("webhook-signature"); got != want {
		t.Fatalf("docs/api.md shows webhook-signature %q, Sign gives %q", want, got)
	}
}
