package deliverytest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
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

// SMTPSink is an SMTP server on the loopback interface that needs no authentication and offers no
// TLS. Recipients are matched case-insensitively, as bare addresses ("bob@example.com"); methods
// also accept "Bob <bob@example.com>". It is safe for concurrent use.
type SMTPSink struct {
	t        testing.TB
	listener net.Listener
	// done ends programmed delays when the test is over.
	done chan struct{}

	mu       sync.Mutex
	messages []SMTPMessage
	// script is keyed by addressKey.
	script script
	// received is closed and replaced whenever a message is recorded, to wake waiters.
	received chan struct{}
	// connections counts the connections that greeted the sink; open holds those still open.
	connections int
	open        map[*smtpSession]struct{}
	// closeAfter is the CloseAfter cap; 0 for none.
	closeAfter int
}

// NewSMTPSink starts an SMTP sink; it stops when the test ends.
func NewSMTPSink(t testing.TB) *SMTPSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: listen: %v", err)
	}
	s := &SMTPSink{
		t:        t,
		listener: l,
		done:     make(chan struct{}),
		script:   newScript(),
		received: make(chan struct{}),
		open:     make(map[*smtpSession]struct{}),
	}

	server := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return s.connect(c), nil
	}))
	server.Domain = "localhost"
	server.AllowInsecureAuth = true
	server.MaxMessageBytes = 10 << 20
	server.MaxRecipients = 100
	// Bounds a client that stops talking; programmed delays happen between reads, not in them.
	server.ReadTimeout = time.Minute
	server.WriteTimeout = time.Minute
	// Logging to t would panic once the test is over and connections are still being torn down.
	server.ErrorLog = log.New(io.Discard, "", 0)

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve(l)
	}()
	t.Cleanup(func() {
		close(s.done)
		_ = server.Close()
		// Close misses the listener when Serve has not registered it yet.
		_ = l.Close()
		<-served
	})
	return s
}

// Addr returns the sink's address, "127.0.0.1:port".
func (s *SMTPSink) Addr() string { return s.listener.Addr().String() }

// Host returns "127.0.0.1".
func (s *SMTPSink) Host() string { return s.listener.Addr().(*net.TCPAddr).IP.String() }

// Port returns the port the sink listens on.
func (s *SMTPSink) Port() int { return s.listener.Addr().(*net.TCPAddr).Port }

// Messages returns a copy of every accepted message, oldest first.
func (s *SMTPSink) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SMTPMessage, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.clone()
	}
	return out
}

// Received returns a copy of the accepted messages addressed to recipient, oldest first.
func (s *SMTPSink) Received(recipient string) []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.receivedLocked(addressKey(recipient))
}

func (s *SMTPSink) receivedLocked(key string) []SMTPMessage {
	var out []SMTPMessage
	for _, m := range s.messages {
		if slices.ContainsFunc(m.To, func(to string) bool { return addressKey(to) == key }) {
			out = append(out, m.clone())
		}
	}
	return out
}

// Count returns how many messages the sink accepted.
func (s *SMTPSink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Attempts returns how many times a client named recipient in RCPT TO, rejected or not.
func (s *SMTPSink) Attempts(recipient string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script.attempts[addressKey(recipient)]
}

// Wait blocks until at least n messages for recipient were accepted and returns them, or returns
// ctx's error. It is how a test waits for a delivery made by another goroutine or process.
func (s *SMTPSink) Wait(ctx context.Context, recipient string, n int) ([]SMTPMessage, error) {
	key := addressKey(recipient)
	for {
		s.mu.Lock()
		got := s.receivedLocked(key)
		wake := s.received
		s.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

// FailTimes rejects RCPT TO for recipient with the SMTP reply code (e.g. 451, 550) the next n
// times, then accepts it again. n of 0 removes a programmed failure.
func (s *SMTPSink) FailTimes(recipient string, n int, code int) {
	s.t.Helper()
	if msg := checkFailure(code, n); msg != "" {
		s.t.Fatalf("smtp sink: FailTimes(%q, %d, %d): %s", recipient, n, code, msg)
	}
	s.program(recipient, failure{code: code, remaining: n})
}

// AlwaysFail rejects RCPT TO for recipient with the SMTP reply code from now on.
func (s *SMTPSink) AlwaysFail(recipient string, code int) {
	s.t.Helper()
	if msg := checkFailure(code, 0); msg != "" {
		s.t.Fatalf("smtp sink: AlwaysFail(%q, %d): %s", recipient, code, msg)
	}
	s.program(recipient, failure{code: code, remaining: -1})
}

func (s *SMTPSink) program(recipient string, f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.fail(addressKey(recipient), f)
}

// FailAll rejects RCPT TO for every recipient with the SMTP reply code (e.g. 451) until
// FailAll(0) is called; programmed per-recipient failures are not consumed meanwhile. It is how
// a test makes the whole relay flap. It may be called from any goroutine.
func (s *SMTPSink) FailAll(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.setFailAll("SMTPSink", code)
}

// Delay makes the sink wait d after receiving a message for recipient before it answers the
// DATA, as a slow relay would. The message is still accepted afterwards unless the test ended.
func (s *SMTPSink) Delay(recipient string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.delays[addressKey(recipient)] = d
}

// DelayTimes makes the sink wait d after receiving the next n messages for recipient before it
// answers their DATA, then answer as programmed otherwise (Delay, if any, still applies; the
// longer of the two wins). As with Delay, a delayed message is still accepted afterwards, even if
// its client gave up meanwhile, unless the test ended. n of 0 removes the programmed delays.
func (s *SMTPSink) DelayTimes(recipient string, n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.delayTimes(addressKey(recipient), n, d)
}

// rcpt counts an attempt for recipient and returns the programmed rejection, if any.
func (s *SMTPSink) rcpt(recipient string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := addressKey(recipient)
	s.script.attempts[key]++
	code, everyone, failed := s.script.takeFailure(key)
	switch {
	case !failed:
		return nil
	case everyone:
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "deliverytest: every recipient is rejected for now"}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "deliverytest: programmed rejection of " + recipient}
}

func (s *SMTPSink) delayFor(recipients []string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, r := range recipients {
		d = max(d, s.script.delayFor(addressKey(r)))
	}
	return d
}

func (s *SMTPSink) record(m SMTPMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.received)
	s.received = make(chan struct{})
}

// smtpSession is one client connection's transaction state.
type smtpSession struct {
	sink *SMTPSink
	conn *smtp.Conn
	from string
	to   []string
	// inTransaction is true from MAIL FROM to the end of the transaction; accepted counts the
	// messages accepted on this connection; drop is set by DropIdleConnections for a connection to
	// hang up on when its transaction ends, with dropCode. All are guarded by sink.mu.
	inTransaction bool
	accepted      int
	drop          bool
	dropCode      int
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.mu.Lock()
	ss.inTransaction = true
	ss.sink.mu.Unlock()
	ss.from = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.sink.rcpt(to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if d := ss.sink.delayFor(ss.to); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ss.sink.done:
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "deliverytest: sink stopped"}
		}
	}
	ss.sink.record(parseSMTPMessage(ss.from, slices.Clone(ss.to), data))
	ss.sink.mu.Lock()
	ss.accepted++
	ss.sink.mu.Unlock()
	return nil
}

// Reset ends a transaction: go-smtp calls it for RSET and after each DATA, once the reply is
// written, which is when CloseAfter and DropIdleConnections hang up.
func (ss *smtpSession) Reset() {
	ss.from = ""
	ss.to = nil
	ss.sink.mu.Lock()
	ss.inTransaction = false
	drop, code := ss.drop, ss.dropCode
	if ss.sink.closeAfter > 0 && ss.accepted >= ss.sink.closeAfter {
		drop, code = true, 0
	}
	ss.sink.mu.Unlock()
	if drop {
		ss.hangUp(code)
	}
}

// hangUp closes the connection, first sending a reply with code unless it is 0. It works on the
// raw connection: smtp.Conn.Close takes a lock go-smtp holds around Reset, and go-smtp flushes
// each of its replies, so the one written here is not interleaved with another.
func (ss *smtpSession) hangUp(code int) {
	c := ss.conn.Conn()
	if code != 0 {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "%d 4.4.2 deliverytest: closing connection\r\n", code)
	}
	_ = c.Close()
}

func (ss *smtpSession) Logout() error {
	ss.sink.disconnect(ss)
	return nil
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

// Connection-level faults and counts of the SMTP sink: how many connections clients opened, and a
// relay that hangs up on idle clients or after a number of messages, so that tests of connection
// reuse run against a server that really closes sockets.

// Connections returns how many connections greeted the sink (EHLO or HELO) since it started.
func (s *SMTPSink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// OpenConnections returns how many of those connections are still open. The sink notices that a
// client hung up only when its next read fails, so a test that expects a count to drop should
// poll.
func (s *SMTPSink) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// DropIdleConnections closes every connection between mail transactions, as a relay does that
// reaps idle clients or restarts, and returns how many it closed or will close: a connection in
// the middle of a transaction is closed when it ends (after the reply to its DATA, say). With code
// 0 the sink hangs up without a word; with a 4xx code (421 is what relays say) it first sends that
// reply, which the client reads as the answer to its next command.
func (s *SMTPSink) DropIdleConnections(code int) int {
	s.t.Helper()
	if code != 0 && (code < 400 || code > 499) {
		s.t.Fatalf("smtp sink: DropIdleConnections(%d): want 0 or a 4xx code", code)
	}
	s.mu.Lock()
	var idle []*smtpSession
	for ss := range s.open {
		if ss.inTransaction {
			// go-smtp ends a transaction only after writing the reply to its DATA, so a client
			// may already be done with a connection that is still in one here.
			ss.drop, ss.dropCode = true, code
		} else {
			idle = append(idle, ss)
		}
	}
	n := len(s.open)
	s.mu.Unlock()

	// An idle connection's server goroutine is waiting for a command, not writing a reply.
	for _, ss := range idle {
		ss.hangUp(code)
	}
	return n
}

// CloseAfter makes the sink hang up on each connection right after it accepted its n-th message
// (the reply to the DATA is sent first), as relays that cap the messages per connection do. n of
// 0 removes the cap. It applies to connections already open too.
func (s *SMTPSink) CloseAfter(n int) {
	s.t.Helper()
	if n < 0 {
		s.t.Fatalf("smtp sink: CloseAfter(%d): want n >= 0", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeAfter = n
}

// connect starts the session of a connection that just greeted the sink.
func (s *SMTPSink) connect(c *smtp.Conn) *smtpSession {
	ss := &smtpSession{sink: s, conn: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connections++
	s.open[ss] = struct{}{}
	return ss
}

// disconnect forgets a session whose connection closed.
func (s *SMTPSink) disconnect(ss *smtpSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, ss)
}
