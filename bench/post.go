package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/wire"
)

// body is notification i's request: a small template with two variables, or with html an email
// carrying the newsletter as its HTML template, with its ten variables and no text template (the
// text part is read back from the rendered HTML).
func body(i int, smsRatio float64, html bool) []byte {
	if isSMS(i, smsRatio) {
		b := make([]byte, 0, 256)
		b = append(b, `{"type":"sms","recipient":"`...)
		b = append(b, smsRecipient(i)...)
		b = append(b, `","content":`...)
		return textContent(b, i)
	}
	if html {
		return htmlBody(i)
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"email","recipient":"`...)
	b = append(b, emailRecipient(i)...)
	b = append(b, `","subject":"`+benchSubject+`","content":`...)
	return textContent(b, i)
}

// textContent appends the small template and its two variables to b, and closes the request.
func textContent(b []byte, i int) []byte {
	b = append(b, `"`+benchText+`","variables":{"name":"Ada","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, "}}"...)
}

// newsletter is an HTML newsletter of about 20 KB: a header, seven article blocks laid out in
// tables with inline styles, links, and a footer, with ten variables in element text,
// attributes and URLs. The Go benchmarks of templates and handlers render this file too.
//
//go:embed newsletter.html
var newsletter string

// newsletterJSON is the newsletter as a JSON string, encoded once for every request.
var newsletterJSON = func() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(newsletter); err != nil {
		panic(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}()

// htmlBody is email i's request with the newsletter.
func htmlBody(i int) []byte {
	b := make([]byte, 0, len(newsletterJSON)+768)
	b = append(b, `{"type":"email","recipient":"`...)
	b = append(b, emailRecipient(i)...)
	b = append(b, `","subject":"{{.company}} news, issue {{.issue}}","html":`...)
	b = append(b, newsletterJSON...)
	b = append(b, ',')
	return newsletterVariables(b, i)
}

// newsletterVariables appends the newsletter's ten variables for email i to b, and closes the
// request.
func newsletterVariables(b []byte, i int) []byte {
	b = append(b, `"variables":{"name":"Ada","email":"`...)
	b = append(b, emailRecipient(i)...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"issue":37,"date":"November 2026","company":"Herald & Co",`+
		`"logo_url":"https://cdn.example.com/newsletter/logo.png",`+
		`"view_url":"https://news.example.com/issues/37?u=`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","preferences_url":"https://news.example.com/preferences?u=`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `&t=5f2b","unsubscribe_url":"https://news.example.com/unsubscribe?u=`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, `&t=5f2b"}}`...)
}

// storedBody is notification i's request by a stored template: the same templates as body's,
// kept on the server under the names createTemplates gives them, with the same variables.
func storedBody(i int, smsRatio float64, html bool) []byte {
	b := make([]byte, 0, 1024)
	switch {
	case isSMS(i, smsRatio):
		b = append(b, `{"type":"sms","recipient":"`...)
		b = append(b, smsRecipient(i)...)
		b = append(b, `","template":"`+smsTemplate+`",`...)
	case html:
		b = append(b, `{"type":"email","recipient":"`...)
		b = append(b, emailRecipient(i)...)
		b = append(b, `","template":"`+newsletterTemplate+`",`...)
		return newsletterVariables(b, i)
	default:
		b = append(b, `{"type":"email","recipient":"`...)
		b = append(b, emailRecipient(i)...)
		b = append(b, `","template":"`+emailTemplate+`",`...)
	}
	b = append(b, `"variables":{"name":"Ada","n":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, "}}"...)
}

// requestBody is notification i's request as cfg asks: inline templates, or stored ones.
func requestBody(i int, cfg Config) []byte {
	if cfg.Template {
		return storedBody(i, cfg.SMSRatio, cfg.HTML)
	}
	return body(i, cfg.SMSRatio, cfg.HTML)
}

// post sends notification i and records the answer: its latency, and either the id the API
// accepted it with or why it was not accepted.
func (r *runner) post(ctx context.Context, i int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/api/v1/notifications/send", bytes.NewReader(requestBody(i, r.cfg)))
	if err != nil {
		r.errs.add("request: "+err.Error(), err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	r.firstPost.CompareAndSwap(0, r.t.since(sent))
	r.posted.Add(1)
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			// A request that timed out or lost its connection took this long too: leaving it out
			// would make the tail look best when requests are failing.
			r.apiLatency.Record(time.Since(sent))
			r.errs.add("transport: "+transportCause(err), err.Error())
		}
		return
	}
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	answered := time.Now()
	r.apiLatency.Record(answered.Sub(sent))
	storeMax(&r.lastAnswer, r.t.since(answered))
	if resp.StatusCode != http.StatusAccepted {
		r.errs.add(refusal(resp.StatusCode, resp.Status, answer))
		return
	}
	if readErr != nil {
		r.errs.add("transport: read answer", readErr.Error())
		return
	}
	id, ok := acceptedID(answer)
	if !ok {
		r.errs.add("202 without an id", string(answer))
		return
	}
	r.recordAccepted(i, id, answered)
}

// refusal names a POST the API did not accept by its status and error code ("503
// unavailable"), the kind it is counted under, and keeps the status and message for the samples.
func refusal(code int, status string, answer []byte) (kind, message string) {
	var e wire.Error
	_ = json.Unmarshal(answer, &e)
	kind = strconv.Itoa(code)
	if e.Error.Code != "" {
		kind += " " + e.Error.Code
	}
	return kind, fmt.Sprintf("%s: %s", status, e.Error.Message)
}

// acceptedID returns the notification id a 202 answer carries, and whether it carries one.
func acceptedID(answer []byte) (uuid.UUID, bool) {
	var a wire.Notification
	if err := json.Unmarshal(answer, &a); err != nil {
		return uuid.UUID{}, false
	}
	id, err := uuid.Parse(a.ID)
	return id, err == nil
}

// recordAccepted counts notification i as accepted with id, and starts watching it when it is
// sampled: at once without sinks, and with them once it has arrived (see poller).
func (r *runner) recordAccepted(i int, id uuid.UUID, answered time.Time) {
	r.accepted.Add(1)
	delivered := r.t.accept(i, id, answered)
	if delivered {
		r.acceptedDelivered.Add(1)
	}
	if r.sampled(i) && (delivered || !r.sinks) {
		r.poller.add(i)
	}
}

// transportCause names the cause of a failed request in a few words.
func transportCause(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return "other"
}

// errorCounter counts failed POSTs by kind and keeps a few messages.
type errorCounter struct {
	total   atomic.Int64
	mu      sync.Mutex
	byKind  map[string]int64
	samples []string
}

// add counts one failed POST of kind. The first message of each kind is kept as a sample, five
// at most and cut to 300 bytes, so that a report says what went wrong without growing with the
// failures.
func (e *errorCounter) add(kind, message string) {
	e.total.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byKind[kind]++
	if len(e.samples) < 5 && e.byKind[kind] == 1 {
		if len(message) > 300 {
			message = message[:300] + "…"
		}
		e.samples = append(e.samples, message)
	}
}

// counts returns the counts by kind and the samples, for the report.
func (e *errorCounter) counts() (byKind map[string]int64, samples []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byKind, e.samples
}
