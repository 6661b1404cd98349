package main

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/ratelimit"
)

// TestRateSettings: the rates reach the limiter keyed by provider name, and a rate that cannot be
// read is refused before anything connects, naming its flag.
func TestRateSettings(t *testing.T) {
	c := rateConfig{SMTP: "100/s", SMS: "20/m", MaxWait: 5 * time.Minute}
	if err := c.validate(); err != nil {
		t.Fatalf("valid rates refused: %v", err)
	}
	got := c.rates()
	if got["smtp"] != (ratelimit.Rate{N: 100, Per: time.Second}) || got["http-sms"] != (ratelimit.Rate{N: 20, Per: time.Minute}) || len(got) != 2 {
		t.Errorf("rates %v: want smtp 100/s and http-sms 20/m", got)
	}
	if r := (rateConfig{}).rates(); r != nil {
		t.Errorf("no rates set gives %v, want none", r)
	}
	for _, tt := range []struct {
		c    rateConfig
		flag string
	}{
		{rateConfig{SMTP: "100"}, "--smtp-rate"},
		{rateConfig{SMTP: "fast/s"}, "--smtp-rate"},
		{rateConfig{SMS: "10/d"}, "--sms-rate"},
		{rateConfig{SMS: "0/s"}, "--sms-rate"},
		// The longest wait stays well under RabbitMQ's consumer timeout, and is a wait.
		{rateConfig{MaxWait: 0}, "--rate-limit-max-wait"},
		{rateConfig{MaxWait: 30 * time.Minute}, "--rate-limit-max-wait"},
	} {
		if err := tt.c.validate(); err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("validate %+v: %v, want an error naming %s", tt.c, err, tt.flag)
		}
	}
}

// TestIgnoredRates: a rate set for a channel that delivers to the log is named, so that the
// worker warns at start; a rate for the provider it limits, a failover led by it, or a channel
// the worker does not deliver is not.
func TestIgnoredRates(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	smtp, err := delivery.NewSMTP(delivery.SMTPConfig{Host: "127.0.0.1", Port: 25, From: "herald@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c := rateConfig{SMTP: "100/s", SMS: "20/s"}
	settings, names := c.ignored(map[herald.Channel]delivery.Provider{
		herald.ChannelEmail: delivery.NewLog(logger),
		herald.ChannelSMS:   delivery.NewLog(logger),
	})
	if !slices.Equal(settings, []string{"HERALD_SMTP_RATE", "HERALD_SMS_RATE"}) || !slices.Equal(names, []string{"log", "log"}) {
		t.Errorf("rates for channels delivering to the log: %v %v, want both named", settings, names)
	}
	settings, _ = c.ignored(map[herald.Channel]delivery.Provider{herald.ChannelEmail: smtp})
	if len(settings) != 0 {
		t.Errorf("a rate for the SMTP provider, SMS not delivered: %v, want none ignored", settings)
	}
	settings, _ = rateConfig{}.ignored(map[herald.Channel]delivery.Provider{herald.ChannelEmail: delivery.NewLog(logger)})
	if len(settings) != 0 {
		t.Errorf("no rates set: %v, want none ignored", settings)
	}
}
