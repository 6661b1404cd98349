package bounces

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/herald-notify/herald/delivery"
)

// Report types of a multipart/report (RFC 6522) that Herald reads.
const (
	// TypeDeliveryStatus is a delivery status notification (RFC 3464).
	TypeDeliveryStatus = "delivery-status"
	// TypeFeedbackReport is an abuse feedback report (RFC 5965, ARF).
	TypeFeedbackReport = "feedback-report"
)

// ErrNotReport is wrapped by Parse's error for mail that is not a report Herald reads.
var ErrNotReport = errors.New("not a delivery status notification or feedback report")

// Report is what a delivery status notification or a feedback report says.
type Report struct {
	// Type is TypeDeliveryStatus or TypeFeedbackReport.
	Type string
	// MessageID is the report's own Message-ID, without angle brackets.
	MessageID string
	// ReportingMTA is the server that reported: a DSN's Reporting-MTA, a feedback report's
	// Reporting-MTA or, failing that, its Source-IP.
	ReportingMTA string
	// Recipients are a DSN's per-recipient fields, in order.
	Recipients []RecipientStatus
	// Feedback is a feedback report's fields.
	Feedback Feedback
	// Original is the returned message, or its headers, when the report carries them.
	Original Original
}

// RecipientStatus is one recipient's part of a DSN.
type RecipientStatus struct {
	// Recipient is the Final-Recipient's address (Original-Recipient's when there is none).
	Recipient string
	// Action is failed, delayed, delivered, relayed or expanded, in lower case.
	Action string
	// Status is the enhanced status code ("5.1.1").
	Status string
	// Diagnostic is the Diagnostic-Code without its type ("550 5.1.1 user unknown").
	Diagnostic string
}

// Feedback is a feedback report's fields.
type Feedback struct {
	Type           string
	UserAgent      string
	SourceIP       string
	OriginalRcptTo string
}

// Original is what a report shows of the message it is about.
type Original struct {
	// MessageID is its Message-ID without angle brackets.
	MessageID string
	// NotificationID is its X-Herald-Notification-Id.
	NotificationID string
}

// Parse reads raw as a multipart/report of type delivery-status or feedback-report. Anything
// else fails with an error wrapping ErrNotReport; a report whose parts cannot be read fails too.
func Parse(raw []byte) (r Report, err error) {
	defer r.clean()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Report{}, fmt.Errorf("%w: read the message: %v", ErrNotReport, err)
	}
	r = Report{MessageID: trimAngles(msg.Header.Get("Message-Id"))}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return r, fmt.Errorf("%w: content type %q: %v", ErrNotReport, msg.Header.Get("Content-Type"), err)
	}
	reportType := strings.ToLower(params["report-type"])
	if reportType == "global-delivery-status" {
		// RFC 6533: the same fields, in UTF-8.
		reportType = TypeDeliveryStatus
	}
	if mediaType != "multipart/report" || (reportType != TypeDeliveryStatus && reportType != TypeFeedbackReport) {
		return r, fmt.Errorf("%w: content type %s, report type %q", ErrNotReport, mediaType, params["report-type"])
	}
	if params["boundary"] == "" {
		return r, fmt.Errorf("%w: multipart/report without a boundary", ErrNotReport)
	}
	r.Type = reportType

	found := false
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := parts.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if found {
				// Reports often cut the returned message short, closing boundary and all: what
				// came before it is whole.
				break
			}
			return r, fmt.Errorf("read the report's parts: %w", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body := decodePart(p)
		switch {
		case ct == "message/delivery-status" || ct == "message/global-delivery-status":
			if r.Type != TypeDeliveryStatus {
				continue
			}
			if err := r.readDeliveryStatus(body); err != nil {
				return r, err
			}
			found = true
		case ct == "message/feedback-report":
			if r.Type != TypeFeedbackReport {
				continue
			}
			if err := r.readFeedback(body); err != nil {
				return r, err
			}
			found = true
		case ct == "message/rfc822" || ct == "text/rfc822-headers" || ct == "message/global" || ct == "message/global-headers":
			r.Original = readOriginal(body)
		}
	}
	if !found {
		return r, fmt.Errorf("%w: a %s report without its message/%s part", ErrNotReport, r.Type, r.Type)
	}
	return r, nil
}

// clean makes every field of r text PostgreSQL keeps: mail servers write their diagnostics and
// headers in any 8-bit charset, and a byte sequence that is not UTF-8, or a NUL, would make the
// report's row and events fail to insert — and the sender retry it, failing, for days.
func (r *Report) clean() {
	for _, f := range []*string{&r.Type, &r.MessageID, &r.ReportingMTA, &r.Feedback.Type, &r.Feedback.UserAgent,
		&r.Feedback.SourceIP, &r.Feedback.OriginalRcptTo, &r.Original.MessageID, &r.Original.NotificationID} {
		*f = text(*f)
	}
	for i := range r.Recipients {
		rs := &r.Recipients[i]
		rs.Recipient, rs.Action, rs.Status, rs.Diagnostic = text(rs.Recipient), text(rs.Action), text(rs.Status), text(rs.Diagnostic)
	}
}

// text is s as UTF-8 without NULs: invalid bytes become U+FFFD.
func text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// decodePart undoes a part's base64 transfer encoding; multipart.Reader undoes quoted-printable
// itself, and 7bit, 8bit and binary need nothing.
func decodePart(p *multipart.Part) io.Reader {
	if strings.EqualFold(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")), "base64") {
		return base64.NewDecoder(base64.StdEncoding, p)
	}
	return p
}

// readDeliveryStatus reads a message/delivery-status body: the per-message fields, then a
// group of fields for each recipient, the groups separated by blank lines (RFC 3464 §2.1).
func (r *Report) readDeliveryStatus(body io.Reader) error {
	groups, err := fieldGroups(body)
	if err != nil {
		return fmt.Errorf("read the delivery status: %w", err)
	}
	if len(groups) == 0 {
		return fmt.Errorf("%w: an empty delivery status", ErrNotReport)
	}
	r.ReportingMTA = typedValue(groups[0].Get("Reporting-Mta"))
	for _, g := range groups[1:] {
		rcpt := typedValue(g.Get("Final-Recipient"))
		if rcpt == "" {
			rcpt = typedValue(g.Get("Original-Recipient"))
		}
		r.Recipients = append(r.Recipients, RecipientStatus{
			Recipient:  trimAngles(rcpt),
			Action:     strings.ToLower(firstWord(g.Get("Action"))),
			Status:     firstWord(g.Get("Status")),
			Diagnostic: typedValue(g.Get("Diagnostic-Code")),
		})
	}
	if len(r.Recipients) == 0 {
		return fmt.Errorf("%w: a delivery status without a recipient", ErrNotReport)
	}
	return nil
}

// readFeedback reads a message/feedback-report body: one group of fields (RFC 5965 §3.5).
func (r *Report) readFeedback(body io.Reader) error {
	groups, err := fieldGroups(body)
	if err != nil {
		return fmt.Errorf("read the feedback report: %w", err)
	}
	if len(groups) == 0 {
		return fmt.Errorf("%w: an empty feedback report", ErrNotReport)
	}
	g := groups[0]
	r.Feedback = Feedback{
		Type:           strings.ToLower(firstWord(g.Get("Feedback-Type"))),
		UserAgent:      g.Get("User-Agent"),
		SourceIP:       g.Get("Source-Ip"),
		OriginalRcptTo: trimAngles(g.Get("Original-Rcpt-To")),
	}
	if r.Feedback.Type == "" {
		return fmt.Errorf("%w: a feedback report without a Feedback-Type", ErrNotReport)
	}
	r.ReportingMTA = typedValue(g.Get("Reporting-Mta"))
	if r.ReportingMTA == "" {
		r.ReportingMTA = r.Feedback.SourceIP
	}
	return nil
}

// fieldGroups reads header-style field groups separated by blank lines.
func fieldGroups(body io.Reader) ([]textproto.MIMEHeader, error) {
	br := bufio.NewReader(body)
	var groups []textproto.MIMEHeader
	for {
		// Skip the blank lines before a group; textproto reads up to the one after it.
		for {
			b, err := br.Peek(1)
			if err != nil {
				return groups, nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			_, _ = br.ReadByte()
		}
		h, err := textproto.NewReader(br).ReadMIMEHeader()
		if len(h) > 0 {
			groups = append(groups, h)
		}
		if err == io.EOF {
			return groups, nil
		}
		if err != nil {
			return groups, err
		}
	}
}

// readOriginal reads the Message-ID and X-Herald-Notification-Id of a returned message or of
// its headers. Reports often truncate the message, so a body that ends early is no error.
func readOriginal(body io.Reader) Original {
	h, _ := textproto.NewReader(bufio.NewReader(body)).ReadMIMEHeader()
	return Original{
		MessageID:      trimAngles(h.Get("Message-Id")),
		NotificationID: strings.TrimSpace(h.Get(delivery.HeaderNotificationID)),
	}
}

// typedValue is a DSN field's value without its type: "rfc822; bob@example.net" is
// "bob@example.net", with runs of white space (folded lines) made one space.
func typedValue(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	return strings.Join(strings.Fields(v), " ")
}

// firstWord is the first word of v: "5.1.1 (bad mailbox)" is "5.1.1".
func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

// trimAngles strips white space and the angle brackets around an address or a Message-ID.
func trimAngles(v string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "<"), ">")
}
