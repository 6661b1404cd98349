package herald

import (
	"errors"
	"fmt"
)

// Error codes. The http package maps each to one status code; only EINTERNAL is logged there, the
// others are the client's to read.
const (
	EINVALID     = "invalid"     // the input breaks a rule; Fields says which
	ETOOLARGE    = "too_large"   // the input is larger than a limit allows; Fields says which part
	ENOTFOUND    = "not_found"   // no such notification
	ECONFLICT    = "conflict"    // the stream moved on since it was read
	EUNAVAILABLE = "unavailable" // a dependency is down; retrying later may succeed
	EINTERNAL    = "internal"    // a bug or an unexpected failure

	EUNAUTHORIZED = "unauthorized" // no valid API key was presented
	EFORBIDDEN    = "forbidden"    // the API key lacks the scope the action needs
	ERATELIMITED  = "rate_limited" // the API key sent too many requests; retry later
)

// Error is the error type the layers hand each other: a machine-readable code, a message meant
// for the caller, and for EINVALID the offending fields.
type Error struct {
	Code    string
	Message string
	// Fields maps a field path (e.g. "recipient", "variables.name") to what is wrong with it.
	Fields map[string]string
	// Err is the underlying cause, kept for errors.Is/As and logs, never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming the offending fields.
func Invalid(message string, fields map[string]string) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error,
// and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-facing message of err: the *Error's message, or a generic one
// for internal errors, whose details stay in the logs.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e) && e.Code != EINTERNAL:
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the offending fields of an EINVALID or ETOOLARGE error, or nil.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
