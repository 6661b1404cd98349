package main

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/handlers"
)

// TestAttachmentSettings: the attachment settings reach the acceptor's limits, and settings that
// cannot work are refused before anything connects, each naming its flag.
func TestAttachmentSettings(t *testing.T) {
	valid := func() httpConfig {
		return httpConfig{MaxBodyBytes: 1, RateWindow: time.Second, IdempotencyTTL: time.Hour,
			MaxAttachments: 10, MaxAttachmentBytes: 5 << 20, MaxAttachmentsBytes: 10 << 20,
			AttachmentTypes: []string{" Application/PDF", "", "text/csv"}, AttachmentRetention: 720 * time.Hour,
			MaxScheduleAhead: 720 * time.Hour}
	}
	c := valid()
	if err := c.validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	l := c.limits()
	if l.MaxAttachments != 10 || l.MaxAttachmentBytes != 5<<20 || l.MaxAttachmentsBytes != 10<<20 ||
		strings.Join(l.AttachmentTypes, ",") != "application/pdf,text/csv" || l.MaxContentBytes != handlers.DefaultLimits.MaxContentBytes {
		t.Errorf("limits %+v: want the settings, types trimmed and lower-cased, the rest the defaults", l)
	}
	tests := []struct {
		change func(*httpConfig)
		flag   string
	}{
		{func(c *httpConfig) { c.MaxAttachments = -1 }, "--max-attachments"},
		{func(c *httpConfig) { c.MaxAttachmentBytes = 0 }, "--max-attachment-bytes"},
		{func(c *httpConfig) { c.MaxAttachmentsBytes = c.MaxAttachmentBytes - 1 }, "--max-attachments-bytes"},
		{func(c *httpConfig) { c.MaxAttachmentsBytes = 65<<20 + 1 }, "--max-attachments-bytes"},
		{func(c *httpConfig) { c.AttachmentTypes = []string{"application/pdf; x=y"} }, "--attachment-types"},
		{func(c *httpConfig) { c.AttachmentTypes = []string{"pdf"} }, "--attachment-types"},
		{func(c *httpConfig) { c.AttachmentRetention = time.Minute }, "--attachment-retention"},
	}
	for _, tt := range tests {
		c := valid()
		tt.change(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("validate: %v, want an error naming %s", err, tt.flag)
		}
	}
}
