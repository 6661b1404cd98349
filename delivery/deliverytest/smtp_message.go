package deliverytest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
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
	// Parts are the leaf parts of a multipart body, in order, nested multiparts flattened; nil
	// for a single-part message or a multipart body that does not parse.
	Parts []SMTPPart
}

// SMTPPart is one part of a multipart message.
type SMTPPart struct {
	// Header is the part's header as transmitted (Content-Type, Content-Transfer-Encoding).
	Header textproto.MIMEHeader
	// MediaType is the part's media type, lower-cased ("text/html"); Charset its charset
	// parameter as given ("UTF-8").
	MediaType, Charset string
	// Body is the part's body with its transfer encoding undone, line ends as "\n" and without
	// the final line break.
	Body string
	// Data is the part's body with its transfer encoding undone and nothing else changed: the
	// bytes of an attached file.
	Data []byte
}

// clone returns a deep copy, so that a test cannot change what the sink recorded.
func (m SMTPMessage) clone() SMTPMessage {
	m.To = slices.Clone(m.To)
	m.Data = bytes.Clone(m.Data)
	if m.Parts != nil {
		parts := make([]SMTPPart, len(m.Parts))
		for i, p := range m.Parts {
			p.Header = textproto.MIMEHeader(http.Header(p.Header).Clone())
			p.Data = bytes.Clone(p.Data)
			parts[i] = p
		}
		m.Parts = parts
	}
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
	m.Body = text(decodeBody(parsed.Header.Get("Content-Type"), parsed.Header.Get("Content-Transfer-Encoding"), raw))
	if mediaType, params, err := mime.ParseMediaType(parsed.Header.Get("Content-Type")); err == nil && strings.HasPrefix(mediaType, "multipart/") {
		m.Parts, _ = parseParts(raw, params["boundary"], 0)
	}
	return m
}

// parseParts returns the leaf parts of a multipart body, descending into nested multiparts up
// to a small depth.
func parseParts(raw []byte, boundary string, depth int) ([]SMTPPart, error) {
	if boundary == "" || depth > 4 {
		return nil, errors.New("no boundary")
	}
	r := multipart.NewReader(bytes.NewReader(raw), boundary)
	var parts []SMTPPart
	for {
		// NextRawPart leaves the transfer encoding in place, so that the header shows it.
		p, err := r.NextRawPart()
		if err == io.EOF {
			return parts, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		ct := p.Header.Get("Content-Type")
		mediaType, params, _ := mime.ParseMediaType(ct)
		if strings.HasPrefix(mediaType, "multipart/") {
			nested, err := parseParts(body, params["boundary"], depth+1)
			if err != nil {
				return nil, err
			}
			parts = append(parts, nested...)
			continue
		}
		data := decodeBody(ct, p.Header.Get("Content-Transfer-Encoding"), body)
		parts = append(parts, SMTPPart{
			Header:    p.Header,
			MediaType: mediaType,
			Charset:   params["charset"],
			Body:      text(data),
			Data:      data,
		})
	}
}

// text is a decoded body with line ends as "\n" and without the final line break.
func text(body []byte) string {
	return strings.TrimSuffix(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
}

// decodeBody undoes the transfer encoding of a single-part body or part, given its Content-Type
// and Content-Transfer-Encoding. The charset is taken to be UTF-8, which is what Herald sends.
func decodeBody(contentType, encoding string, raw []byte) []byte {
	if mediaType, _, err := mime.ParseMediaType(contentType); err == nil && strings.HasPrefix(mediaType, "multipart/") {
		return raw
	}
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
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
