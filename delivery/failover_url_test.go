package delivery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/delivery"
)

// The primary's settings, which a secondary inherits what its URL does not say.
var (
	primarySMTP = delivery.SMTPConfig{Host: "relay.example.com", Username: "primary", Password: "primary-pw",
		From: "Herald <herald@example.com>", TLS: delivery.TLSRequire, Timeout: 20 * time.Second}
	primarySMS = delivery.SMSConfig{URL: "https://api.twilio.com", AccountSID: "ACprimary", AuthToken: "primary-token",
		From: "+15005550006", Timeout: 20 * time.Second, StatusCallback: "https://herald.example.com/api/v1/receipts/sms"}
)

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		raw  string
		want delivery.SMTPConfig
	}{
		{"smtp://backup.example.com", delivery.SMTPConfig{Name: "smtp-2", Host: "backup.example.com",
			From: "Herald <herald@example.com>", TLS: delivery.TLSRequire, Timeout: 20 * time.Second}},
		{"smtp://u%40x:p%2Cw%2Fd@backup.example.com:2525?tls=none&from=alerts%40example.org&name=mailgun&timeout=5s&message_id_domain=example.org",
			delivery.SMTPConfig{Name: "mailgun", Host: "backup.example.com", Port: 2525, Username: "u@x", Password: "p,w/d",
				From: "alerts@example.org", TLS: delivery.TLSNone, Timeout: 5 * time.Second, MessageIDDomain: "example.org"}},
		{"smtps://backup.example.com", delivery.SMTPConfig{Name: "smtp-2", Host: "backup.example.com",
			From: "Herald <herald@example.com>", TLS: delivery.TLSImplicit, Timeout: 20 * time.Second}},
	}
	for _, tt := range tests {
		got, err := delivery.ParseSMTPURL(tt.raw, primarySMTP, "smtp-2")
		if err != nil {
			t.Errorf("ParseSMTPURL(%s): %v", tt.raw, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseSMTPURL(%s) (-want +got):\n%s", tt.raw, diff)
		}
	}
}

// TestParseFailoverURLErrors: a bad URL gets an error that says what is wrong and never quotes
// the password, even when the URL does not parse.
func TestParseFailoverURLErrors(t *testing.T) {
	const pw = "S3cr3tPl4nt"
	tests := []struct {
		sms  bool
		raw  string
		want string
	}{
		{false, "smtp://u:" + pw + "@host:bad", "not a URL"},
		{false, "smtp://u:" + pw + "/x@host:25", "not a URL"},
		{false, "http://u:" + pw + "@host", `scheme "http": want smtp://… or smtps://…`},
		{false, "smtp://u:" + pw + "@", "no host"},
		{false, "smtp://u:" + pw + "@host:99999", "port is not a number from 1 to 65535"},
		{false, "smtp://u:" + pw + "@host?tls=maybe", `unknown tls mode "maybe"`},
		{false, "smtps://u:" + pw + "@host?tls=none", "contradicts smtps://"},
		{false, "smtp://u:" + pw + "@host?sender=x", `unknown parameter "sender"`},
		{false, "smtp://u:" + pw + "@host?name=Backup!", "name=Backup!: want lower-case letters"},
		{false, "smtp://u:" + pw + "@host?timeout=soon", "timeout=soon is not a positive duration"},
		{false, "smtp://u:" + pw + "@host?from=nobody", `from "nobody" is not an email address`},
		{false, "smtp://:" + pw + "@host", "password is set but username is empty"},
		{true, "https://host", "want the account sid and auth token"},
		{true, "https://AC1:" + pw + "@host?to=x", `unknown parameter "to"`},
		{true, "smtp://AC1:" + pw + "@host", `scheme "smtp": want http://… or https://…`},
		{true, "https://AC1:" + pw + "@host#frag", "a fragment"},
	}
	for _, tt := range tests {
		var err error
		if tt.sms {
			_, err = delivery.ParseSMSURL(tt.raw, primarySMS, "http-sms-2")
		} else {
			_, err = delivery.ParseSMTPURL(tt.raw, primarySMTP, "smtp-2")
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse %s: err %v, want %q", tt.raw, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "Pl4nt") {
			t.Errorf("parse %s: the error shows the password: %v", tt.raw, err)
		}
	}
}

func TestParseSMSURL(t *testing.T) {
	got, err := delivery.ParseSMSURL("https://ACbackup:tok%2Fen@sms.example.net/gw?from=%2B15005550007&name=backup", primarySMS, "http-sms-2")
	if err != nil {
		t.Fatal(err)
	}
	want := delivery.SMSConfig{Name: "backup", URL: "https://sms.example.net/gw", AccountSID: "ACbackup", AuthToken: "tok/en",
		From: "+15005550007", Timeout: 20 * time.Second, StatusCallback: primarySMS.StatusCallback}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Client" }, cmp.Ignore())); diff != "" {
		t.Errorf("ParseSMSURL (-want +got):\n%s", diff)
	}
}
