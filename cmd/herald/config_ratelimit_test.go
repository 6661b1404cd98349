package main

import (
	"strings"
	"testing"
	"time"

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
