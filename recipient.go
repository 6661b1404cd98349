package herald

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on email recipients. 320 is the customary 64 + "@" + 255 ceiling, here applied to the
// whole recipient, display name included; 254 is the longest path SMTP can carry (RFC 5321
// §4.5.3.1.3 less the angle brackets); 64 is the local-part limit of §4.5.3.1.1.
const (
	maxEmailRecipient = 320
	maxAddrSpec       = 254
	maxLocalPart      = 64
)

// e164Example is quoted in every SMS error so that a client sees the expected shape at once.
const e164Example = "E.164 like +14155550123 is expected"

// ValidateRecipient checks recipient against the rules of channel c and returns an EINVALID
// *Error whose Fields has key "recipient" explaining what is wrong.
//
// An unknown channel is reported on the "type" field instead, since the recipient cannot be
// judged without one.
func ValidateRecipient(c Channel, recipient string) error {
	var problem string
	switch c {
	case ChannelEmail:
		problem = emailProblem(recipient)
	case ChannelSMS:
		problem = phoneProblem(recipient)
	default:
		return Invalid(fmt.Sprintf("unknown channel %q", c), map[string]string{
			"type": fmt.Sprintf("unknown channel %q: want email or sms", c),
		})
	}
	message := fmt.Sprintf("invalid %s recipient: %s", c, problem)
	switch problem {
	case "":
		return nil
	case "is required":
		message = "recipient is required"
	}
	return Invalid(message, map[string]string{
		"recipient": problem,
	})
}

// emailProblem says what is wrong with recipient as an email address, or "" if nothing is.
func emailProblem(recipient string) string {
	if strings.TrimSpace(recipient) == "" {
		return "is required"
	}
	if !utf8.ValidString(recipient) {
		return "is not valid UTF-8"
	}
	// The address ends up in a mail header: a line break would let the client add headers of
	// its own (Bcc: ...), so it is refused before the parser gets a chance to fold it away.
	if p := controlProblem(recipient); p != "" {
		return p
	}
	if strings.TrimSpace(recipient) != recipient {
		return "must not start or end with whitespace"
	}
	if len(recipient) > maxEmailRecipient {
		return fmt.Sprintf("is longer than %d bytes", maxEmailRecipient)
	}
	if !strings.Contains(recipient, "@") {
		return "not an email address: missing '@'"
	}
	addr, err := mail.ParseAddress(recipient)
	if err != nil {
		return parseProblem(recipient, err)
	}
	// ParseAddress decodes RFC 2047 words in the display name, which can smuggle in the line
	// breaks the raw check above cannot see.
	if p := controlProblem(addr.Name); p != "" {
		return "display name " + p
	}
	at := strings.LastIndexByte(addr.Address, '@')
	local, domain := addr.Address[:at], addr.Address[at+1:]
	switch {
	case domain == "":
		return "not an email address: missing domain after '@'"
	case len(addr.Address) > maxAddrSpec:
		return fmt.Sprintf("address is longer than %d bytes", maxAddrSpec)
	case len(local) > maxLocalPart:
		return fmt.Sprintf("the part before '@' is longer than %d bytes", maxLocalPart)
	}
	return ""
}

// parseProblem turns a net/mail error into advice: its messages describe the parser's state
// ("missing word in phrase"), which says little to a client who only mistyped an address.
func parseProblem(recipient string, err error) string {
	msg := strings.ReplaceAll(err.Error(), "mail: ", "")
	switch {
	case strings.HasPrefix(msg, "expected single address"),
		strings.HasPrefix(msg, "group with multiple addresses"),
		strings.HasPrefix(msg, "expected comma") && strings.Count(recipient, "@") > 1:
		return "must be exactly one email address, not a list"
	}
	if !strings.ContainsAny(recipient, "<>") {
		at := strings.LastIndexByte(recipient, '@')
		switch {
		case at == 0:
			return "not an email address: missing the part before '@'"
		case at == len(recipient)-1:
			return "not an email address: missing domain after '@'"
		}
		return "not an email address: want name@domain, with no spaces or misplaced dots"
	}
	return "not an email address: " + msg
}

// controlProblem says whether s holds a line break or another control character.
func controlProblem(s string) string {
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\u2028' || r == '\u2029' || r == '\u0085':
			return "must be a single line: line breaks are not allowed"
		case unicode.IsControl(r):
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}

// phoneProblem says what is wrong with recipient as an E.164 phone number, or "" if nothing is.
func phoneProblem(recipient string) string {
	if strings.TrimSpace(recipient) == "" {
		return "is required"
	}
	digits, ok := strings.CutPrefix(recipient, "+")
	if !ok {
		if strings.HasPrefix(recipient, "00") {
			return "must start with '+' instead of 00: " + e164Example
		}
		return "must start with '+' and the country code: " + e164Example
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "may contain only digits after '+', no spaces, dashes or parentheses: " + e164Example
		}
	}
	switch {
	case len(digits) < 2:
		return "is too short: " + e164Example
	case len(digits) > 15:
		return "has more than 15 digits: " + e164Example
	case digits[0] == '0':
		return "country code cannot start with 0: " + e164Example
	}
	return ""
}
