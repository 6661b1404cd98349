package events

import (
	"encoding/json"
	"time"
)

// Metadata travels with every event: which request it belongs to and what caused it.
type Metadata struct {
	// CorrelationID ties together everything done for one API request.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CausationID is the id of the message (command) whose handling appended the event.
	CausationID string `json:"causation_id,omitempty"`
	// Actor says who or what appended the event: "api", "worker:<host>/<pid>", an operator's name.
	Actor string `json:"actor,omitempty"`
	// Trace is the W3C trace context (its traceparent only) of the span that appended the
	// event, when tracing is on: a reader of the log continues the notification's trace from
	// it (see package tracing).
	Trace map[string]string `json:"trace,omitempty"`
}

// Recorded is an event as the log holds it.
type Recorded struct {
	ID       string          `json:"id"`
	StreamID string          `json:"stream_id"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata Metadata        `json:"metadata"`
}

// Event decodes the recorded data.
func (r Recorded) Event() (Event, error) { return Decode(r.Type, r.Data) }
