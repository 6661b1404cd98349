package events

// What providers and mail servers report after a notification was sent. Each is appended to the
// notification's stream when a report arrives and is matched to it: an SMS gateway's status
// callback, a delivery status notification (RFC 3464) or a feedback report (RFC 5965) sent back
// to the notification's return path. None sends anything again.

// Event type names of the reports, as stored in event_log.event_type.
const (
	TypeNotificationDelivered   = "NotificationDelivered"
	TypeNotificationUndelivered = "NotificationUndelivered"
	TypeNotificationBounced     = "NotificationBounced"
	TypeNotificationComplained  = "NotificationComplained"
)

// NotificationDelivered records that the provider reported the message delivered to the
// recipient's device or mailbox.
type NotificationDelivered struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// ProviderStatus is the status as the provider named it ("delivered").
	ProviderStatus string `json:"provider_status,omitempty"`
}

// NotificationUndelivered records that the provider reported it could not deliver the message.
type NotificationUndelivered struct {
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	ProviderStatus    string `json:"provider_status,omitempty"`
	// ErrorCode is the provider's code for why ("30003"), Error its words when it gave any.
	ErrorCode string `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Bounce kinds.
const (
	// BounceHard: the address cannot receive (RFC 3464 action failed, status 5.x.x).
	BounceHard = "hard"
	// BounceSoft: a temporary failure (action delayed, or status 4.x.x): the mail server may
	// still deliver, and the notification stays sent.
	BounceSoft = "soft"
)

// NotificationBounced records a delivery status notification for the message.
type NotificationBounced struct {
	// Kind is BounceHard or BounceSoft.
	Kind string `json:"kind"`
	// Status is the enhanced status code ("5.1.1"), Diagnostic the remote server's words.
	Status     string `json:"status,omitempty"`
	Diagnostic string `json:"diagnostic,omitempty"`
	// ReportingMTA is the server that reported, Recipient the address it reported on.
	ReportingMTA string `json:"reporting_mta,omitempty"`
	Recipient    string `json:"recipient,omitempty"`
	// ReportID names the raw report as kept for operators.
	ReportID string `json:"report_id,omitempty"`
}

// NotificationComplained records that the recipient reported the message as abuse (a feedback
// report, RFC 5965).
type NotificationComplained struct {
	// FeedbackType is the report's Feedback-Type ("abuse").
	FeedbackType string `json:"feedback_type,omitempty"`
	ReportingMTA string `json:"reporting_mta,omitempty"`
	UserAgent    string `json:"user_agent,omitempty"`
	ReportID     string `json:"report_id,omitempty"`
}

func (NotificationDelivered) EventType() string   { return TypeNotificationDelivered }
func (NotificationUndelivered) EventType() string { return TypeNotificationUndelivered }
func (NotificationBounced) EventType() string     { return TypeNotificationBounced }
func (NotificationComplained) EventType() string  { return TypeNotificationComplained }

func (e *NotificationDelivered) Accept(v Visitor)   { v.NotificationDelivered(e) }
func (e *NotificationUndelivered) Accept(v Visitor) { v.NotificationUndelivered(e) }
func (e *NotificationBounced) Accept(v Visitor)     { v.NotificationBounced(e) }
func (e *NotificationComplained) Accept(v Visitor)  { v.NotificationComplained(e) }
