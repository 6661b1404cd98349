package receipts_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/herald-notify/herald/receipts"
)

// Twilio's published example of a signed request (its "validating requests" documentation):
// auth token 12345, this URL and these parameters are signed RSOYDt4T1cUTdK1PDd93/VVr8B8=.
func TestSignMatchesTwilioExample(t *testing.T) {
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	got := receipts.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)
	if want := "RSOYDt4T1cUTdK1PDd93/VVr8B8="; got != want {
		t.Errorf("Sign = %q, want Twilio's %q", got, want)
	}
}

// Our own vector, computed independently:
//
//	printf '%s' 'https://herald.example.com/api/v1/receipts/smsAccountSidAC1MessageSidSM1MessageStatusdelivered' |
//	  openssl dgst -sha1 -hmac 'secret-token' -binary | base64
func TestSignOwnVector(t *testing.T) {
	params := url.Values{"MessageStatus": {"delivered"}, "MessageSid": {"SM1"}, "AccountSid": {"AC1"}}
	got := receipts.Sign("secret-token", "https://herald.example.com/api/v1/receipts/sms", params)
	if want := ownVector; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerifier(t *testing.T) {
	const (
		token  = "secret-token"
		public = "https://herald.example.com/"
	)
	v, err := receipts.NewVerifier(public, token)
	if err != nil {
		t.Fatal(err)
	}
	params := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "AccountSid": {"AC1"}}
	// What the gateway signs: the public URL it was given, whatever host Herald sees.
	good := receipts.Sign(token, "https://herald.example.com/api/v1/receipts/sms", params)
	tampered := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "AccountSid": {"AC1"}}
	added := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "AccountSid": {"AC1"}, "ErrorCode": {"30003"}}
	tests := []struct {
		name   string
		uri    string
		params url.Values
		sig    string
		want   bool
	}{
		{"signed", "/api/v1/receipts/sms", params, good, true},
		{"unsigned", "/api/v1/receipts/sms", params, "", false},
		{"wrong token", "/api/v1/receipts/sms", params, receipts.Sign("other-token", "https://herald.example.com/api/v1/receipts/sms", params), false},
		{"signed for another path", "/api/v1/receipts/sms/inbound", params, good, false},
		{"signed for another host", "/api/v1/receipts/sms", params, receipts.Sign(token, "http://10.0.0.5:8080/api/v1/receipts/sms", params), false},
		{"query added", "/api/v1/receipts/sms?x=1", params, good, false},
		{"parameter tampered", "/api/v1/receipts/sms", tampered, good, false},
		{"parameter added", "/api/v1/receipts/sms", added, good, false},
		{"not base64", "/api/v1/receipts/sms", params, "!!!", false},
		{"with a query, signed with it", "/api/v1/receipts/sms?k=v", params,
			receipts.Sign(token, "https://herald.example.com/api/v1/receipts/sms?k=v", params), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Verify(tt.uri, tt.params, tt.sig); got != tt.want {
				t.Errorf("Verify(%q, %v, %q) = %v, want %v", tt.uri, tt.params, tt.sig, got, tt.want)
			}
		})
	}
}

func TestParsePublicURL(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "https://herald.example.com", want: "https://herald.example.com"},
		{in: "https://herald.example.com/", want: "https://herald.example.com"},
		{in: "http://127.0.0.1:8080/herald/", want: "http://127.0.0.1:8080/herald"},
		{in: "", wantErr: "is empty"},
		{in: "herald.example.com", wantErr: "want an http or https URL"},
		{in: "ftp://herald.example.com", wantErr: "want an http or https URL"},
		{in: "https://", wantErr: "has no host"},
		{in: "https://gw:hunter2@herald.example.com/", want: "https://gw:hunter2@herald.example.com"},
		{in: "ftp://gw:hunter2@herald.example.com", wantErr: "want an http or https URL"},
		{in: "https://gw:hunter2@herald.example.com/?a=b", wantErr: "no query or fragment"},
		{in: "https://herald.example.com/?a=b", wantErr: "no query or fragment"},
		{in: "https://herald.example.com/#x", wantErr: "no query or fragment"},
		{in: "http://[::1", wantErr: "does not parse"},
	}
	for _, tt := range tests {
		got, err := receipts.ParsePublicURL(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParsePublicURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParsePublicURL(%q): err = %v, want one containing %q", tt.in, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("ParsePublicURL(%q): the error shows the password: %v", tt.in, err)
		}
	}
}

// A public URL with credentials (for a proxy that asks the gateway for them) is accepted signed
// with them or without them, and by nothing else.
func TestVerifierWithCredentials(t *testing.T) {
	v, err := receipts.NewVerifier("https://gw:pw@herald.example.com", "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	params := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}
	for _, signed := range []string{"https://gw:pw@herald.example.com/api/v1/receipts/sms", "https://herald.example.com/api/v1/receipts/sms"} {
		if !v.Verify("/api/v1/receipts/sms", params, receipts.Sign("secret-token", signed, params)) {
			t.Errorf("a signature over %s is refused", signed)
		}
	}
	if v.Verify("/api/v1/receipts/sms", params, receipts.Sign("secret-token", "https://gw:other@herald.example.com/api/v1/receipts/sms", params)) {
		t.Error("a signature over other credentials is accepted")
	}
}

func TestNewVerifierNeedsBoth(t *testing.T) {
	if _, err := receipts.NewVerifier("", "token"); err == nil {
		t.Error("NewVerifier without a public URL: no error")
	}
	if _, err := receipts.NewVerifier("https://herald.example.com", ""); err == nil {
		t.Error("NewVerifier without a token: no error")
	}
}

// ownVector is the openssl command's output above.
const ownVector = "5X7vVOyyUu6tYKqgWXZTIXLzcn0="
