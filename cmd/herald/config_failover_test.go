package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestFailoverSettingsRefusedBeforeConnecting: a bad failover URL or breaker setting stops the
// worker before it connects, with an error that names the setting and the URL's place in it and
// never shows the URL's password.
func TestFailoverSettingsRefusedBeforeConnecting(t *testing.T) {
	commandSettings(t)
	const pw = "Pl4ntedFa1lover"
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"worker", "--email-provider", "smtp", "--smtp-failover-urls", "smtp://backup.example.com,smtp://u:" + pw + "@relay:bad"},
			want: "--smtp-failover-urls: URL 2 of 2: not a URL"},
		{env: map[string]string{"HERALD_EMAIL_PROVIDER": "smtp", "HERALD_SMTP_FAILOVER_URLS": "smtp://u:" + pw + "@relay?tls=sometimes"},
			args: []string{"worker"}, want: `--smtp-failover-urls: URL 1 of 1: smtp config: unknown tls mode "sometimes"`},
		{args: []string{"worker", "--sms-provider", "http", "--sms-from", "+15005550006", "--sms-failover-urls", "https://gw.example.com"},
			want: "--sms-failover-urls: URL 1 of 1: want the account sid and auth token"},
		{args: []string{"worker", "--sms-provider", "http", "--sms-failover-urls", "https://AC1:" + pw + "@gw.example.com"},
			want: "--sms-failover-urls: URL 1 of 1: sms config: from is required"},
		{args: []string{"worker", "--breaker-failures", "0"}, want: "--breaker-failures 0: want at least 1"},
		{args: []string{"all", "--breaker-timeout", "0s"}, want: "--breaker-timeout 0s: want more than 0"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			t.Setenv("HERALD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
			root := rootCommand()
			root.SetArgs(tt.args)
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error()+out.String(), pw) {
				t.Errorf("the error shows the password: %v\n%s", err, out.String())
			}
		})
	}
}

// TestFailoverURLsMaskedInHelp: --help shows each URL of the list with its password masked.
func TestFailoverURLsMaskedInHelp(t *testing.T) {
	commandSettings(t)
	t.Setenv("HERALD_SMTP_FAILOVER_URLS", "smtp://a:Pl4ntedOne@relay1:587, smtp://b:Pl4ntedTwo@relay2:587?name=two")
	root := rootCommand()
	root.SetArgs([]string{"worker", "--help"})
	var out bytes.Buffer
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if strings.Contains(help, "Pl4nted") {
		t.Errorf("worker --help shows a failover password:\n%s", help)
	}
	if !strings.Contains(help, "smtp://a:xxxxx@relay1:587,smtp://b:xxxxx@relay2:587?name=two") {
		t.Errorf("worker --help does not show the masked URLs:\n%s", help)
	}
}
