package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
)

// sendFields are the fields of a send request, matched exactly (encoding/json would also take
// "TYPE" for "type").
var sendFields = map[string]bool{"type": true, "recipient": true, "subject": true, "content": true, "html": true, "variables": true, "template": true, "attachments": true, "send_at": true, "priority": true}

// attachmentFields are the fields of one attachment.
var attachmentFields = map[string]bool{"filename": true, "content_type": true, "content": true}

// DecodeSend reads a send request from r, at most limit bytes. Body that is not JSON is a 400;
// JSON that does not fit the request's shape (unknown fields, wrong types, missing fields) is a
// 422 naming the fields; a body over the limit is a 413.
func DecodeSend(r *http.Request, w http.ResponseWriter, limit int64) (handlers.SendRequest, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return handlers.SendRequest{}, &herald.Error{Code: codeUnsupportedMedia,
				Message: fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return handlers.SendRequest{}, &herald.Error{Code: codeTooLarge,
				Message: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		}
		return handlers.SendRequest{}, &herald.Error{Code: codeMalformed, Message: "could not read the request body", Err: err}
	}
	return decodeSendBody(body)
}

// decodeSendBody reads the body of a send strictly: one JSON object, exact field names, no
// repeats, the right types; every problem found is reported at once.
func decodeSendBody(body []byte) (handlers.SendRequest, error) {
	malformed := func(format string, args ...any) error {
		return &herald.Error{Code: codeMalformed, Message: fmt.Sprintf(format, args...)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return handlers.SendRequest{}, malformed("request body is empty: send a JSON object")
	}
	if !utf8.Valid(body) {
		return handlers.SendRequest{}, malformed("request body is not valid UTF-8")
	}
	raw, err := topLevelFields(body)
	if err != nil {
		return handlers.SendRequest{}, err
	}

	fields := map[string]string{}
	for name := range raw {
		if !sendFields[name] {
			fields[name] = "is not a known field: send type, recipient, content, variables and optionally subject, html, attachments, send_at and priority, or template instead of subject, content and html (names are case-sensitive)"
		}
	}
	str := func(name string, required bool) string {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if required {
				fields[name] = "is required"
			}
			return ""
		}
		var out string
		if err := json.Unmarshal(v, &out); err != nil {
			fields[name] = "must be a string, not " + jsonValueKind(v)
		}
		return out
	}
	req := handlers.SendRequest{
		Type:      str("type", true),
		Recipient: str("recipient", true),
		Subject:   str("subject", false),
		HTML:      str("html", false),
		Template:  str("template", false),
		Priority:  str("priority", false),
	}
	// content is required unless html gives the text part or a stored template gives every
	// part; the acceptor says so with the other rules of content.
	req.Content = str("content", req.HTML == "" && raw["html"] == nil && req.Template == "" && raw["template"] == nil)
	if v, ok := raw["variables"]; ok && string(v) != "null" {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&req.Variables); err != nil {
			fields["variables"] = "must be an object, not " + jsonValueKind(v)
		}
	}
	if v, ok := raw["attachments"]; ok && string(v) != "null" {
		req.Attachments = decodeAttachments(v, fields)
	}
	if s := str("send_at", false); s != "" {
		if at, ok := parseSendAt(s); !ok {
			fields["send_at"] = fmt.Sprintf("must be a time in RFC 3339 with an offset (2026-12-24T18:00:00Z, 2026-12-24T19:00:00+01:00), not %q", s)
		} else {
			req.SendAt = &at
		}
	} else if _, bad := fields["send_at"]; !bad && raw["send_at"] != nil && string(raw["send_at"]) != "null" {
		fields["send_at"] = "must be a time in RFC 3339 with an offset, not an empty string"
	}
	if len(fields) > 0 {
		return req, herald.Invalid("the notification is invalid", fields)
	}
	return req, nil
}

// decodeAttachments reads the attachments array: objects of exactly filename, content_type and
// content, each a string. What is wrong is noted in fields as attachments[i].<field>; the
// acceptor checks the values.
func decodeAttachments(v json.RawMessage, fields map[string]string) []handlers.Attachment {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		fields["attachments"] = "must be an array of objects, not " + jsonValueKind(v)
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	out := make([]handlers.Attachment, len(items))
	for i, item := range items {
		at := fmt.Sprintf("attachments[%d]", i)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(item, &obj); err != nil || obj == nil {
			fields[at] = "must be an object with filename, content_type and content, not " + jsonValueKind(item)
			continue
		}
		for name := range obj {
			if !attachmentFields[name] {
				fields[at+"."+name] = "is not a known field: send filename, content_type and content (names are case-sensitive)"
			}
		}
		str := func(name string) string {
			raw, ok := obj[name]
			if !ok || string(raw) == "null" {
				fields[at+"."+name] = "is required"
				return ""
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				fields[at+"."+name] = "must be a string, not " + jsonValueKind(raw)
			}
			return s
		}
		out[i] = handlers.Attachment{Filename: str("filename"), ContentType: str("content_type"), Content: str("content")}
	}
	return out
}

// topLevelFields splits a JSON object into its fields, refusing anything else and fields given
// twice (which encoding/json would silently resolve to the last one).
func topLevelFields(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, decodeError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &herald.Error{Code: codeMalformed, Message: "request body must be a JSON object"}
	}
	out := map[string]json.RawMessage{}
	dupes := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, decodeError(err)
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, decodeError(err)
		}
		if _, seen := out[name]; seen {
			dupes[name] = "is given more than once"
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &herald.Error{Code: codeMalformed, Message: "request body has data after the JSON object"}
	}
	if len(dupes) > 0 {
		return nil, herald.Invalid("the notification is invalid", dupes)
	}
	return out, nil
}

// jsonValueKind names the kind of a JSON value for error messages.
func jsonValueKind(v json.RawMessage) string {
	switch t := bytes.TrimSpace(v); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '"':
		return "a string"
	case t[0] == '{':
		return "an object"
	case t[0] == '[':
		return "an array"
	case t[0] == 't' || t[0] == 'f':
		return "a boolean"
	case t[0] == 'n':
		return "null"
	}
	return "a number"
}

// decodeError turns encoding/json's syntax errors into answers a client can act on.
func decodeError(err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return &herald.Error{Code: codeMalformed, Err: err,
			Message: fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &herald.Error{Code: codeMalformed, Err: err, Message: "request body is truncated JSON"}
	}
	return &herald.Error{Code: codeMalformed, Err: err, Message: "request body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// rfc3339 is RFC 3339's date-time: a fraction of a second after a dot, of at most 9 digits
// (what a time.Time holds), and an offset Z or ±hh:mm; T and Z in either case, as the RFC
// allows. time.Parse alone lets through a comma before the fraction and any number of digits.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)

// parseSendAt reads s as a strict RFC 3339 date-time, cut to microseconds: what PostgreSQL stores
// of it (the schedule's due_at, the status table's send_at), so that the event, the tables and
// the API's answers before and after projection all say the same instant, and a retry with
// the nanoseconds is the same request for its idempotency key.
func parseSendAt(s string) (time.Time, bool) {
	if !rfc3339.MatchString(s) {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, false
	}
	return at.Truncate(time.Microsecond), true
}
