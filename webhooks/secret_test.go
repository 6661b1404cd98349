package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/herald-notify/herald/webhooks"
)

func TestNewSecretIsPrefixedBase64Of32Bytes(t *testing.T) {
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	text := s.Reveal()
	encoded, ok := strings.CutPrefix(text, "whsec_")
	if !ok {
		t.Fatalf("Reveal() = %q, want the whsec_ prefix", text)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) != 32 {
		t.Fatalf("key: %d bytes, err %v; want 32 bytes of standard base64", len(key), err)
	}
	again, err := webhooks.ParseSecret(text)
	if err != nil || again.Reveal() != text {
		t.Fatalf("ParseSecret(Reveal()) = %v, %v; want the same secret", again.Reveal(), err)
	}
	other, _ := webhooks.NewSecret()
	if other.Reveal() == text {
		t.Fatal("two new secrets are equal")
	}
}

func TestParseSecretRefusesWithoutQuotingTheSecret(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start with whsec_"},
		{"not base64", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", "not standard base64"},
		{"URL-safe base64 is not the standard alphabet", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_", "not standard base64"},
		{"too short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("twenty-three bytes long")), "23 bytes, at least 24"},
		{"empty", "whsec_", "0 bytes, at least 24"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := webhooks.ParseSecret(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseSecret: %v, want an error saying %q", err, tc.want)
			}
			if body := strings.TrimPrefix(tc.text, "whsec_"); body != "" && strings.Contains(err.Error(), body[:8]) {
				t.Fatalf("error %q quotes the secret", err)
			}
		})
	}
	if _, err := webhooks.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil {
		t.Fatalf("a 24-byte key is the shortest allowed: %v", err)
	}
}

func TestSecretNeverPrintsItsKey(t *testing.T) {
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	revealed := s.Reveal()
	encoded := strings.TrimPrefix(revealed, "whsec_")
	key, _ := base64.StdEncoding.DecodeString(encoded)

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("endpoint", "secret", s, "in_struct", struct{ S webhooks.Secret }{s})
	asJSON, err := json.Marshal(struct {
		Secret webhooks.Secret `json:"secret"`
	}{s})
	if err != nil {
		t.Fatal(err)
	}
	// hidden is a Secret where fmt cannot call its methods: an unexported field.
	hidden := struct{ secret webhooks.Secret }{s}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s),
		"%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s), "%x": fmt.Sprintf("%x", s),
		"%+v of a struct with an unexported Secret": fmt.Sprintf("%+v", hidden),
		"%#v of a struct with an unexported Secret": fmt.Sprintf("%#v", hidden),
		"slog JSON": logged.String(), "json.Marshal": string(asJSON),
	}
	for name, out := range outputs {
		if strings.Contains(out, encoded) || bytes.Contains([]byte(out), key) ||
			strings.Contains(out, fmt.Sprint(key)) || strings.Contains(out, fmt.Sprintf("%x", key)) {
			t.Errorf("%s prints the key: %s", name, out)
		}
	}
	if got := fmt.Sprint(s); got != "whsec_xxxxx" {
		t.Errorf("fmt.Sprint = %q, want the masked form whsec_xxxxx", got)
	}
}
