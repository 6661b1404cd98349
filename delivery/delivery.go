// Package delivery owns the providers that carry a notification out of Herald (SMTP, an HTTP SMS
// gateway, a log for local development) and the classification of their errors as transient or
// permanent.
//
// A provider knows nothing about retries: it makes one attempt and says, through Permanent, whether
// another attempt could succeed. The handlers decide what to do with that answer.
package delivery

import (
	"context"
	"errors"

	"github.com/herald-notify/herald"
)

// Message is what a provider sends.
type Message struct {
	NotificationID string
	Attempt        int
	Channel        herald.Channel
	Recipient      string
	Subject        string // email only
	Body           string
	// HTML is an email's HTML part, sent beside Body (the text part) when not empty.
	HTML string
	// Attachments are files sent with an email, in order, after its text (and HTML) part.
	Attachments []Attachment
}

// Attachment is a file sent with an email, with its bytes.
type Attachment struct {
	Filename    string
	ContentType string
	Data        []byte
}

// Provider delivers the messages of one channel.
type Provider interface {
	// Name identifies the provider in events and logs: "smtp", "http-sms", "log".
	Name() string
	// Send delivers m and returns the provider's id for it. An error is transient (worth retrying)
	// unless it is marked with Permanent.
	Send(ctx context.Context, m Message) (providerMessageID string, err error)
}

// permanentError marks its cause as not worth retrying. It adds nothing to the message, so the
// text a caller records is the provider's own.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying the same message will fail the same way. A nil err
// stays nil, and errors.Is and errors.As still see the cause.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether any error in err's chain was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// unsentError marks a permanent error that Herald raised before contacting the provider.
type unsentError struct{ err error }

func (e *unsentError) Error() string { return e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// Unsent marks err as permanent (see Permanent) and raised by Herald itself before the provider
// was contacted: the message is unfit for it, so the provider's health is not in question. A
// provider's circuit breaker counts such an error as neither a success nor a failure. A nil err
// stays nil.
func Unsent(err error) error {
	if err == nil || IsUnsent(err) {
		return err
	}
	return &unsentError{err: Permanent(err)}
}

// IsUnsent reports whether any error in err's chain was marked with Unsent.
func IsUnsent(err error) bool {
	var u *unsentError
	return errors.As(err, &u)
}
