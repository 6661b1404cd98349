package deliverytest

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/emersion/go-smtp"
)

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

// Mail starts a transaction (MAIL FROM).
func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.mu.Lock()
	ss.inTransaction = true
	ss.sink.mu.Unlock()
	ss.from = from
	return nil
}

// Rcpt takes a recipient (RCPT TO), unless the script rejects it.
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.sink.rcpt(to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data receives the message, holds it back as scripted, and records it.
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
	if !ss.inTransaction {
		ss.sink.idleResets++
	}
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

// Logout ends the connection (QUIT, or a client that hung up).
func (ss *smtpSession) Logout() error {
	ss.sink.disconnect(ss)
	return nil
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

// IdleResets returns how many RSETs (or repeated greetings, which reset the same way) clients
// said outside a mail transaction since the sink started: round trips that carried no message.
func (s *SMTPSink) IdleResets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idleResets
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
