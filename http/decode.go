package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
)

// sendBody is the JSON a client posts. Pointers tell a missing field from an empty one.
type sendBody struct {
	Type      *string        `json:"type"`
	Recipient *string        `json:"recipient"`
	Subject   *string        `json:"subject"`
	Content   *string        `json:"content"`
	Variables map[string]any `json:"variables"`
}

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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var b sendBody
	if err := dec.Decode(&b); err != nil {
		return handlers.SendRequest{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return handlers.SendRequest{}, malformed("request body has data after the JSON object")
	}

	fields := map[string]string{}
	required := func(name string, v *string) string {
		if v == nil {
			fields[name] = "is required"
			return ""
		}
		return *v
	}
	req := handlers.SendRequest{
		Type:      required("type", b.Type),
		Recipient: required("recipient", b.Recipient),
		Content:   required("content", b.Content),
		Variables: b.Variables,
	}
	if b.Subject != nil {
		req.Subject = *b.Subject
	}
	if len(fields) > 0 {
		return req, herald.Invalid("the notification is invalid", fields)
	}
	return req, nil
}

// decodeError turns encoding/json's errors into answers a client can act on.
func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		malformed = func(msg string) error { return &herald.Error{Code: codeMalformed, Message: msg, Err: err} }
	)
	switch {
	case errors.As(err, &syntax):
		return malformed(fmt.Sprintf("request body is not valid JSON (at byte %d): %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: ")))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("request body is truncated JSON")
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return malformed("request body must be a JSON object")
		}
		return herald.Invalid("the notification is invalid", map[string]string{
			typeErr.Field: fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value),
		})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return herald.Invalid("the notification is invalid", map[string]string{
			name: "is not a known field: send type, recipient, content, variables and optionally subject",
		})
	}
	return malformed("request body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String, reflect.Pointer:
		return "a string"
	case reflect.Map:
		return "an object"
	}
	return t.String()
}
