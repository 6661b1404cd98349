package deliverytest

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
)

// SMTPMessage is a message an SMTPSink accepted.
type SMTPMessage struct {
	// From and To are the envelope: MAIL FROM and the accepted RCPT TO addresses.
	From string
	To   []string
	// Data is the message as transmitted, headers and body.
	Data []byte
	// Header is Data's header; nil when Data does not parse as a message.
	Header mail.Header
	// MessageID is the Message-ID header without angle brackets.
	MessageID string
	// NotificationID is the X-Herald-Notification-Id header.
	NotificationID string
	// Subject is the decoded Subject header.
	Subject string
	// Body is the text body with its transfer encoding undone, line ends as "\n" and without the
	// final line break, which SMTP senders add when the text lacks one. A multipart body is left as
	// transmitted.
	Body string
}

// clone returns a deep copy, so that a test cannot change what the sink recorded.
func (m SMTPMessage) clone() SMTPMessage {
	m.To = slices.Clone(m.To)
	m.Data = bytes.Clone(m.Data)
	if m.Header != nil {
		h := make(mail.Header, len(m.Header))
		for k, v := range m.Header {
			h[k] = slices.Clone(v)
		}
		m.Header = h
	}
	return m
}

// parseSMTPMessage fills in the parsed fields of a received message as far as data allows.
func parseSMTPMessage(from string, to []string, data []byte) SMTPMessage {
	m := SMTPMessage{From: from, To: to, Data: data}
	parsed, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		m.Body = string(data)
		return m
	}
	m.Header = parsed.Header
	m.MessageID = strings.Trim(strings.TrimSpace(parsed.Header.Get("Message-Id")), "<>")
	m.NotificationID = parsed.Header.Get("X-Herald-Notification-Id")
	m.Subject = parsed.Header.Get("Subject")
	if subject, err := new(mime.WordDecoder).DecodeHeader(m.Subject); err == nil {
		m.Subject = subject
	}
	raw, _ := io.ReadAll(parsed.Body)
	body := strings.ReplaceAll(string(decodeBody(parsed.Header, raw)), "\r\n", "\n")
	m.Body = strings.TrimSuffix(body, "\n")
	return m
}

// decodeBody undoes the transfer encoding of a single-part body. The charset is taken to be
// UTF-8, which is what Herald sends.
func decodeBody(h mail.Header, raw []byte) []byte {
	if mediaType, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && strings.HasPrefix(mediaType, "multipart/") {
		return raw
	}
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		r = quotedprintable.NewReader(bytes.NewReader(raw))
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw))
	default:
		return raw
	}
	decoded, err := io.ReadAll(r)
	if err != nil {
		return raw
	}
	return decoded
}

// addressKey is the form recipients are matched in: the bare address, lower-cased.
func addressKey(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		s = a.Address
	}
	return strings.ToLower(strings.TrimSpace(s))
}
