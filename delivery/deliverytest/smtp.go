package deliverytest

import (
	"context"
	"io"
	"log"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

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
	// idleResets counts the RSETs said outside a mail transaction.
	idleResets int
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

// receivedLocked returns copies of the accepted messages addressed to key; s.mu is held.
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

// program sets recipient's programmed failure.
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

// delayFor returns how long to hold back a message to recipients: the longest of their delays.
func (s *SMTPSink) delayFor(recipients []string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, r := range recipients {
		d = max(d, s.script.delayFor(addressKey(r)))
	}
	return d
}

// record keeps an accepted message and wakes whoever waits for one.
func (s *SMTPSink) record(m SMTPMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.received)
	s.received = make(chan struct{})
}
