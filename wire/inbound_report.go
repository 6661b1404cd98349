package wire

import "time"

// InboundReport is a mail the bounce listener received — a delivery status notification, a
// feedback report, or whatever else was sent to the bounce domain — and what became of it. Its
// constructor is bounces.WireReport.
type InboundReport struct {
	ID           int64     `json:"id"`
	ReceivedAt   time.Time `json:"received_at"`
	RemoteAddr   string    `json:"remote_addr"`
	EnvelopeFrom string    `json:"envelope_from"`
	EnvelopeTo   []string  `json:"envelope_to"`
	// Size is the message's size as received; Truncated says that only its first 256 KiB are
	// kept.
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated"`
	MessageID string `json:"message_id"`
	// Outcome is hard_bounce, soft_bounce, complaint, duplicate, ignored, unmatched, unparsable,
	// failed, or received while it is being handled.
	Outcome        string `json:"outcome"`
	NotificationID string `json:"notification_id,omitempty"`
	Detail         string `json:"detail"`
	// Raw is the message as kept: only when one report is shown.
	Raw *string `json:"raw,omitempty"`
}

// InboundReports is a page of reports, newest first.
type InboundReports struct {
	Reports []InboundReport `json:"reports"`
	// NextBefore continues the listing after this page (--before); 0, and omitted, on the last.
	NextBefore int64 `json:"next_before,omitempty"`
}
