package receipts

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/herald-notify/herald"
)

// OptOuts records recipients' own requests to stop or restart SMS.
type OptOuts interface {
	OptOut(ctx context.Context, recipient, detail string) error // detail e.g. "STOP from gateway message SM…"
	OptIn(ctx context.Context, recipient, detail string) error
}

// InboundMessage is a message a recipient sent to Herald's number, as the gateway posts it.
type InboundMessage struct {
	MessageSID string
	From       string
	To         string
	Body       string
	// OptOutType is the gateway's own reading of the message (Twilio's Advanced Opt-Out): STOP,
	// START or HELP; empty when it has none.
	OptOutType string
}

// Request is what an inbound message asks of Herald.
type Request string

// The requests an inbound message makes; they are the metric's labels.
const (
	// RequestNone: an ordinary message (HELP among them); nothing to do.
	RequestNone Request = "none"
	// RequestOptOut: stop sending SMS to the sender.
	RequestOptOut Request = "opt_out"
	// RequestOptIn: the sender wants SMS again.
	RequestOptIn Request = "opt_in"
)

// The keywords carriers and gateways treat as a request to stop, or to start again.
var (
	stopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
	startWords = []string{"START", "UNSTOP", "YES"}
)

// Classify reads what m asks: the gateway's OptOutType when it gives STOP or START, else the
// body when it is one of the keywords, trimmed and in any case.
func Classify(m InboundMessage) Request {
	switch strings.ToUpper(strings.TrimSpace(m.OptOutType)) {
	case "STOP":
		return RequestOptOut
	case "START":
		return RequestOptIn
	}
	word := strings.ToUpper(strings.TrimSpace(m.Body))
	switch {
	case slices.Contains(stopWords, word):
		return RequestOptOut
	case slices.Contains(startWords, word):
		return RequestOptIn
	}
	return RequestNone
}

// Detail is what an opt-out or opt-in records of the message that asked for it: the keyword
// and the gateway's id of the message, e.g. "STOP from gateway message SM…". A body that is no
// keyword (the gateway read it as one) is not repeated: the gateway's reading stands for it.
func Detail(m InboundMessage) string {
	word := strings.ToUpper(strings.TrimSpace(m.Body))
	if !slices.Contains(stopWords, word) && !slices.Contains(startWords, word) {
		word = strings.ToUpper(strings.TrimSpace(m.OptOutType))
	}
	return fmt.Sprintf("%s from gateway message %s", word, m.MessageSID)
}

// TakeInbound hands what m asks to opts and says what it was. EINVALID when m asks something
// but names no sender.
func TakeInbound(ctx context.Context, opts OptOuts, m InboundMessage) (Request, error) {
	req := Classify(m)
	if req == RequestNone {
		return req, nil
	}
	from := strings.TrimSpace(m.From)
	if from == "" {
		return req, herald.Invalid("the inbound message names no sender", map[string]string{"From": "is required"})
	}
	var err error
	if req == RequestOptOut {
		err = opts.OptOut(ctx, from, Detail(m))
	} else {
		err = opts.OptIn(ctx, from, Detail(m))
	}
	if err != nil {
		return req, fmt.Errorf("%s of gateway message %s: %w", req, m.MessageSID, err)
	}
	return req, nil
}
