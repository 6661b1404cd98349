package main

import (
	"strings"
	"testing"
	"time"
)

// TestScheduleSetting: --max-schedule-ahead reaches the acceptor's limits, and less than a
// second is refused naming the flag.
func TestScheduleSetting(t *testing.T) {
	c := httpConfig{MaxBodyBytes: 1, RateWindow: time.Second, IdempotencyTTL: time.Hour,
		MaxAttachments: 10, MaxAttachmentBytes: 5 << 20, MaxAttachmentsBytes: 10 << 20,
		AttachmentRetention: 720 * time.Hour, MaxScheduleAhead: 48 * time.Hour}
	if err := c.validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	if got := c.limits().MaxScheduleAhead; got != 48*time.Hour {
		t.Errorf("limits' MaxScheduleAhead = %s, want 48h", got)
	}
	c.MaxScheduleAhead = 0
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "--max-schedule-ahead") {
		t.Errorf("--max-schedule-ahead 0: error %v, want one naming the flag", err)
	}
}
