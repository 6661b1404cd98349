package handlers

import (
	"encoding/base64"
	"fmt"
	"maps"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/attachments"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templates"
)

// Limits bound what a client may ask to send.
type Limits struct {
	MaxContentBytes   int // raw content template
	MaxEmailBodyBytes int // rendered email body: the text part
	MaxHTMLBytes      int // raw HTML template
	MaxHTMLBodyBytes  int // rendered HTML part, after escaping
	MaxSMSBodyChars   int // rendered SMS body, in characters
	MaxSubjectChars   int // rendered email subject

	// Attachments of an email: how many, how large each and all together (decoded bytes), and
	// the media types allowed.
	MaxAttachments      int
	MaxAttachmentBytes  int
	MaxAttachmentsBytes int
	AttachmentTypes     []string

	// MaxScheduleAhead is how far ahead of now a send_at may be.
	MaxScheduleAhead time.Duration
}

// DefaultAttachmentTypes are the media types an attachment may have by default: documents,
// images, tables, text and calendar invitations. Executables, scripts, archives (which may carry
// them) and HTML (which may carry scripts) are left out.
var DefaultAttachmentTypes = []string{
	"application/pdf",
	"image/png", "image/jpeg", "image/gif", "image/webp",
	"text/plain", "text/csv", "text/calendar",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"application/vnd.oasis.opendocument.text",
	"application/vnd.oasis.opendocument.spreadsheet",
}

// MaxFilenameBytes bounds an attachment's filename.
const MaxFilenameBytes = 255

// DefaultLimits are generous for email and follow the usual gateway limit for SMS (10 segments).
var DefaultLimits = Limits{
	MaxContentBytes:   32 << 10,
	MaxEmailBodyBytes: 64 << 10,
	MaxHTMLBytes:      128 << 10,
	MaxHTMLBodyBytes:  256 << 10,
	MaxSMSBodyChars:   1600,
	MaxSubjectChars:   255,

	MaxAttachments:      10,
	MaxAttachmentBytes:  5 << 20,
	MaxAttachmentsBytes: 10 << 20,
	AttachmentTypes:     DefaultAttachmentTypes,

	MaxScheduleAhead: DefaultMaxScheduleAhead,
}

// DefaultMaxScheduleAhead is how far ahead a send may be scheduled by default: 30 days.
const DefaultMaxScheduleAhead = 30 * 24 * time.Hour

// SendBodyBytes is how much larger than the API's other requests a send may be: the attachments
// at their limits in base64 (4 bytes for every 3), and their names and types with room to spare.
func (l Limits) SendBodyBytes() int64 {
	encoded := 4 * ((int64(l.MaxAttachmentsBytes) + 2) / 3)
	return encoded + int64(l.MaxAttachments)*4096
}

// DefaultSubject is the subject of an email sent without one.
const DefaultSubject = "Notification"

// Validate checks req against every rule and renders its templates. All offending fields are
// reported at once, as an EINVALID *herald.Error, or as an ETOOLARGE one when an attachment is
// beyond a size limit.
func (a *Acceptor) Validate(req SendRequest) (*events.NotificationQueued, error) {
	q, _, err := a.validate(req)
	return q, err
}

// validate is Validate, returning also the attachments' files to store.
func (a *Acceptor) validate(req SendRequest) (*events.NotificationQueued, []attachments.File, error) {
	fields := map[string]string{}
	channel := checkAddress(req, fields)
	a.checkContent(req, channel, fields)
	refs, files, tooLarge := a.checkAttachments(req, channel, fields)
	sendAt := a.checkSendAt(req, fields)
	q := &events.NotificationQueued{
		SendAt:      sendAt,
		Channel:     channel,
		Recipient:   req.Recipient,
		Subject:     req.Subject,
		Content:     req.Content,
		HTML:        req.HTML,
		Variables:   req.Variables,
		Attachments: refs,
	}
	if p, err := herald.ParsePriority(req.Priority); err != nil {
		fields["priority"] = "must be high, normal or low"
	} else if p != herald.PriorityNormal {
		// Normal is left out of the event, as it is from every event written before there
		// were priorities.
		q.Priority = p
	}
	if _, bad := fields["html"]; !bad && req.HTML != "" && channel == herald.ChannelEmail {
		q.RenderedHTML = a.renderHTML(req, fields)
	}
	if _, bad := fields["content"]; !bad && channel != "" {
		if hasText(req.Content) || req.HTML == "" {
			q.Body = a.renderBody(req, channel, fields)
		} else if _, bad := fields["html"]; !bad && q.RenderedHTML != "" {
			q.Body = a.textOfHTML(q.RenderedHTML, fields)
		}
	}
	if channel == herald.ChannelEmail {
		q.RenderedSubject = a.renderSubject(req, fields)
	}
	switch {
	case tooLarge:
		return nil, nil, &herald.Error{Code: herald.ETOOLARGE, Message: "the notification's attachments are larger than allowed", Fields: fields}
	case len(fields) > 0:
		return nil, nil, herald.Invalid("the notification is invalid", fields)
	}
	return q, files, nil
}

// checkAttachments decodes and checks an email's attachments, noting what is wrong in fields
// (attachments[i].filename, …); tooLarge is true when one is beyond a size limit. It returns
// the references the log keeps and the files to store, each in the order sent.
func (a *Acceptor) checkAttachments(req SendRequest, channel herald.Channel, fields map[string]string) (refs []events.AttachmentRef, files []attachments.File, tooLarge bool) {
	switch n := len(req.Attachments); {
	case n == 0:
		return nil, nil, false
	case channel == herald.ChannelSMS:
		fields["attachments"] = "are only for email"
		return nil, nil, false
	case n > a.limits.MaxAttachments:
		fields["attachments"] = fmt.Sprintf("are %d files, more than the limit of %d", n, a.limits.MaxAttachments)
		return nil, nil, false
	}
	total := 0
	for i, att := range req.Attachments {
		field := func(name string) string { return fmt.Sprintf("attachments[%d].%s", i, name) }
		if msg := checkFilename(att.Filename); msg != "" {
			fields[field("filename")] = msg
		}
		contentType, msg := a.checkContentType(att.ContentType)
		if msg != "" {
			fields[field("content_type")] = msg
		}
		// Decoding is bounded by the request body's limit; the decoded size is what the limits
		// speak of.
		data, err := base64.StdEncoding.Strict().DecodeString(att.Content)
		switch {
		case err != nil:
			fields[field("content")] = "must be the file's bytes in standard base64 (RFC 4648, with padding)"
			continue
		case len(data) == 0:
			fields[field("content")] = "is empty: attach a file of at least one byte"
			continue
		case len(data) > a.limits.MaxAttachmentBytes:
			fields[field("content")] = fmt.Sprintf("is %d bytes, more than the limit of %d for one file", len(data), a.limits.MaxAttachmentBytes)
			tooLarge = true
		}
		total += len(data)
		f := attachments.NewFile(data)
		files = append(files, f)
		refs = append(refs, events.AttachmentRef{Filename: att.Filename, ContentType: contentType, Size: int64(len(data)), SHA256: f.Hex()})
	}
	if total > a.limits.MaxAttachmentsBytes {
		fields["attachments"] = fmt.Sprintf("are %d bytes together, more than the limit of %d", total, a.limits.MaxAttachmentsBytes)
		tooLarge = true
	}
	return refs, files, tooLarge
}

// checkFilename says what is wrong with an attachment's filename, or "": it names one file,
// without a directory, and fits a mail header.
func checkFilename(name string) string {
	switch {
	case strings.TrimSpace(name) == "":
		return "is required"
	case len(name) > MaxFilenameBytes:
		return fmt.Sprintf("is %d bytes, more than the limit of %d", len(name), MaxFilenameBytes)
	case strings.ContainsAny(name, `/\`):
		return "must be a file's name, without / or \\"
	case name == "." || name == "..":
		return "must name a file"
	case strings.ContainsRune(name, '"'):
		// A mail header quotes the name; mail libraries replace a quote in it.
		return "must not contain a double quote"
	case strings.IndexFunc(name, breaksHeader) >= 0:
		return "must not contain control characters or line breaks"
	}
	return ""
}

// checkContentType returns an attachment's media type as it will be sent (lower-case, with its
// parameters), or says what is wrong with it: not a media type, or not one of the allowed.
func (a *Acceptor) checkContentType(ct string) (string, string) {
	if ct == "" {
		return "", "is required"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil || strings.IndexFunc(ct, breaksHeader) >= 0 {
		return "", "must be a media type, such as application/pdf"
	}
	if !slices.Contains(a.limits.AttachmentTypes, mediaType) {
		return "", fmt.Sprintf("%s is not allowed; allowed: %s", mediaType, strings.Join(a.limits.AttachmentTypes, ", "))
	}
	formatted := mime.FormatMediaType(mediaType, params)
	if formatted == "" {
		return "", "must be a media type, such as application/pdf"
	}
	return formatted, ""
}

// checkAddress checks the idempotency key, the channel and the recipient, noting what is wrong
// in fields. It returns the channel, empty when the type names none.
func checkAddress(req SendRequest, fields map[string]string) herald.Channel {
	if k := req.IdempotencyKey; k != "" && !validIdempotencyKey(k) {
		fields["Idempotency-Key"] = "must be 1 to 255 printable ASCII characters"
	}
	channel, err := herald.ParseChannel(req.Type)
	if err != nil {
		if req.Type == "" {
			fields["type"] = "is required: email or sms"
		} else {
			fields["type"] = fmt.Sprintf("unknown type %q: want email or sms", req.Type)
		}
	} else if err := herald.ValidateRecipient(channel, req.Recipient); err != nil {
		maps.Copy(fields, herald.ErrorFields(err))
	}
	return channel
}

// checkContent checks the templates and variables as sent, before anything is rendered, noting
// what is wrong in fields.
func (a *Acceptor) checkContent(req SendRequest, channel herald.Channel, fields map[string]string) {
	switch {
	case !hasText(req.Content) && req.HTML == "":
		fields["content"] = "is required"
	case len(req.Content) > a.limits.MaxContentBytes:
		fields["content"] = fmt.Sprintf("is %d bytes, more than the limit of %d", len(req.Content), a.limits.MaxContentBytes)
	}
	switch {
	case req.HTML == "":
	case channel == herald.ChannelSMS:
		fields["html"] = "is only for email"
	case !hasText(req.HTML):
		fields["html"] = "is blank: send an HTML template, or leave html out"
	case len(req.HTML) > a.limits.MaxHTMLBytes:
		fields["html"] = fmt.Sprintf("is %d bytes, more than the limit of %d", len(req.HTML), a.limits.MaxHTMLBytes)
	}
	if req.Subject != "" && channel == herald.ChannelSMS {
		fields["subject"] = "is only for email"
	}
	// PostgreSQL cannot store U+0000 in JSON, and no message needs one.
	for name, v := range map[string]string{"content": req.Content, "subject": req.Subject, "html": req.HTML} {
		if strings.ContainsRune(v, 0) {
			fields[name] = "contains a NUL character"
		}
	}
	if path := nulPath(req.Variables, "variables"); path != "" {
		fields[path] = "contains a NUL character"
	}
	if path := hugeNumberPath(req.Variables, "variables"); path != "" {
		fields[path] = "is a number too large or too small to store: send it as a string"
	}
}

// renderBody renders the content with the variables and checks the message it makes against the
// channel's limits, noting what is wrong in fields.
func (a *Acceptor) renderBody(req SendRequest, channel herald.Channel, fields map[string]string) string {
	maxOut := a.limits.MaxEmailBodyBytes
	if channel == herald.ChannelSMS {
		// Characters, checked below; a character is at most 4 bytes.
		maxOut = 4 * a.limits.MaxSMSBodyChars
	}
	body, err := templates.Render("content", req.Content, req.Variables, maxOut)
	switch n := utf8.RuneCountInString(body); {
	case err != nil && channel == herald.ChannelSMS && strings.HasPrefix(herald.ErrorFields(err)["content"], "renders to more than"):
		fields["content"] = fmt.Sprintf("renders to more than the SMS limit of %d characters", a.limits.MaxSMSBodyChars)
	case err != nil:
		mergeFields(fields, err)
	case channel == herald.ChannelSMS && n > a.limits.MaxSMSBodyChars:
		fields["content"] = fmt.Sprintf("renders to %d characters, more than the SMS limit of %d", n, a.limits.MaxSMSBodyChars)
	case strings.TrimSpace(body) == "":
		fields["content"] = "renders to an empty message"
	case strings.ContainsRune(body, 0):
		// A template literal can write what the content itself may not hold.
		fields["content"] = "renders to text with a NUL character"
	}
	return body
}

// renderHTML renders an email's HTML template, escaping every variable for its context, and
// checks the part it makes, noting what is wrong in fields.
func (a *Acceptor) renderHTML(req SendRequest, fields map[string]string) string {
	rendered, err := templates.RenderHTML("html", req.HTML, req.Variables, a.limits.MaxHTMLBodyBytes)
	switch {
	case err != nil:
		mergeFields(fields, err)
	case !hasText(rendered):
		fields["html"] = "renders to an empty message"
	case strings.ContainsRune(rendered, 0):
		fields["html"] = "renders to HTML with a NUL character"
	}
	return rendered
}

// textOfHTML is the text part of an email sent with HTML only: the readable text of the
// rendered HTML, which must say something and fit the limit of a text body.
func (a *Acceptor) textOfHTML(rendered string, fields map[string]string) string {
	text, err := templates.PlainText(rendered)
	switch {
	case err != nil:
		fields["html"] = "could not be read as HTML: " + err.Error()
	case !hasText(text):
		fields["html"] = "renders to HTML without readable text: send content for the text part"
	case len(text) > a.limits.MaxEmailBodyBytes:
		fields["html"] = fmt.Sprintf("renders to more than %d bytes of text; send a shorter content for the text part",
			a.limits.MaxEmailBodyBytes)
	}
	return text
}

// hasText reports whether a template or a rendering holds more than white space.
func hasText(s string) bool { return strings.TrimSpace(s) != "" }

// renderSubject renders an email's subject, DefaultSubject when none was sent, and checks it is
// one line that fits a mail header, noting what is wrong in fields.
func (a *Acceptor) renderSubject(req SendRequest, fields map[string]string) string {
	subject := req.Subject
	if strings.TrimSpace(subject) == "" {
		subject = DefaultSubject
	}
	rendered, err := templates.Render("subject", subject, req.Variables, 4*a.limits.MaxSubjectChars)
	switch {
	case err != nil:
		mergeFields(fields, err)
	case strings.IndexFunc(rendered, breaksHeader) >= 0:
		// A line break in a header would let a client write headers of its own.
		fields["subject"] = "must be a single line of text, without control characters"
	case utf8.RuneCountInString(rendered) > a.limits.MaxSubjectChars:
		fields["subject"] = fmt.Sprintf("renders to more than %d characters", a.limits.MaxSubjectChars)
	}
	return rendered
}

// validIdempotencyKey reports whether k can be stored and sent back in a header: at most 255
// printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// breaksHeader reports whether r has no place in a mail header: control characters, and the
// Unicode line and paragraph separators some clients treat as line breaks.
func breaksHeader(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// mergeFields copies the offending fields of an EINVALID error; any other error is reported
// against the field it came from by the caller's render call.
func mergeFields(fields map[string]string, err error) {
	f := herald.ErrorFields(err)
	if len(f) == 0 {
		fields["content"] = herald.ErrorMessage(err)
		return
	}
	for k, v := range f {
		if _, seen := fields[k]; !seen {
			fields[k] = v
		}
	}
}

// checkSendAt checks when a scheduled send is to go: after now on the server's clock, and at
// most MaxScheduleAhead after it. It returns the time in UTC, or nil for a send without one.
func (a *Acceptor) checkSendAt(req SendRequest, fields map[string]string) *time.Time {
	if req.SendAt == nil {
		return nil
	}
	at := req.SendAt.UTC()
	now := a.now()
	switch {
	case !at.After(now):
		fields["send_at"] = fmt.Sprintf("must be in the future: %s is not after the server's time %s",
			at.Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339))
	case a.limits.MaxScheduleAhead > 0 && at.Sub(now) > a.limits.MaxScheduleAhead:
		fields["send_at"] = fmt.Sprintf("is too far ahead: at most %s after now (%s)",
			a.limits.MaxScheduleAhead, now.Add(a.limits.MaxScheduleAhead).UTC().Format(time.RFC3339))
	default:
		return &at
	}
	return nil
}
