package wire

// Error is how the API answers a request it did not carry out. Code is one of herald's error
// codes or one only the edge produces (malformed_json, too_large, …); Fields name the offending
// fields of the request, each with what is wrong with it.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is what went wrong.
type ErrorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// NewError returns the answer for an error of code with message and fields.
func NewError(code, message string, fields map[string]string) Error {
	return Error{Error: ErrorDetail{Code: code, Message: message, Fields: fields}}
}
