package deliverytest

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// The credentials every SMSSink accepts.
const (
	SMSAccountSID = "AC00000000000000000000000000000001"
	SMSAuthToken  = "deliverytest-auth-token"
)

// SMSMessage is a message an SMSSink accepted.
type SMSMessage struct {
	// SID is the id the sink answered with.
	SID        string
	AccountSID string
	To         string
	From       string
	Body       string
	// IdempotencyToken is the I-Twilio-Idempotency-Token header.
	IdempotencyToken string
	// StatusCallback is the URL the message's status reports are to be posted to, if any.
	StatusCallback string
}

// SMSSink is a Twilio-style SMS gateway on the loopback interface. It serves
// POST /2010-04-01/Accounts/{sid}/Messages.json with form fields To, From and Body, checks HTTP
// Basic auth against AccountSID and AuthToken, and answers 201 with {"sid": "SM…"}. Errors are
// Twilio-shaped JSON: {"code": …, "message": …, "status": …}. It is safe for concurrent use.
type SMSSink struct {
	// AccountSID and AuthToken are the credentials the sink accepts: SMSAccountSID and
	// SMSAuthToken. Read them; changing them is not supported.
	AccountSID string
	AuthToken  string

	t        testing.TB
	listener net.Listener
	// done ends programmed delays when the test is over.
	done chan struct{}

	mu       sync.Mutex
	messages []SMSMessage
	script   script
	// answers replace the JSON answer to an accepted message, per recipient (AnswerAccepted).
	answers map[string]AcceptedAnswer
	// received is closed and replaced whenever a message is recorded, to wake waiters.
	received chan struct{}
}

// NewSMSSink starts an SMS sink; it stops when the test ends.
func NewSMSSink(t testing.TB) *SMSSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sms sink: listen: %v", err)
	}
	s := &SMSSink{
		AccountSID: SMSAccountSID,
		AuthToken:  SMSAuthToken,
		t:          t,
		listener:   l,
		done:       make(chan struct{}),
		script:     newScript(),
		answers:    make(map[string]AcceptedAnswer),
		received:   make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.handleMessages)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}

	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve(l)
	}()
	t.Cleanup(func() {
		close(s.done)
		_ = server.Close()
		_ = l.Close()
		<-served
	})
	return s
}

// URL returns the base URL to configure a provider with, "http://127.0.0.1:port".
func (s *SMSSink) URL() string { return "http://" + s.listener.Addr().String() }

// Messages returns a copy of every accepted message, oldest first.
func (s *SMSSink) Messages() []SMSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMSMessage(nil), s.messages...)
}

// Received returns the accepted messages sent to to, oldest first.
func (s *SMSSink) Received(to string) []SMSMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.receivedLocked(to)
}

// receivedLocked returns the accepted messages to to; s.mu is held.
func (s *SMSSink) receivedLocked(to string) []SMSMessage {
	var out []SMSMessage
	for _, m := range s.messages {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// Count returns how many messages the sink accepted.
func (s *SMSSink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Attempts returns how many requests named to, whatever the sink answered.
func (s *SMSSink) Attempts(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script.attempts[to]
}

// Wait blocks until at least n messages to to were accepted and returns them, or returns ctx's
// error. It is how a test waits for a delivery made by another goroutine or process.
func (s *SMSSink) Wait(ctx context.Context, to string, n int) ([]SMSMessage, error) {
	for {
		s.mu.Lock()
		got := s.receivedLocked(to)
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

// FailTimes answers the next n requests to to with the HTTP status (e.g. 503) and a Twilio-style
// error body, then accepts again. n of 0 removes a programmed failure.
func (s *SMSSink) FailTimes(to string, n int, status int) {
	s.t.Helper()
	if msg := checkFailure(status, n); msg != "" {
		s.t.Fatalf("sms sink: FailTimes(%q, %d, %d): %s", to, n, status, msg)
	}
	s.program(to, failure{code: status, remaining: n})
}

// AlwaysFail answers every request to to with the HTTP status from now on. A 400 carries Twilio's
// invalid-number error, code 21211.
func (s *SMSSink) AlwaysFail(to string, status int) {
	s.t.Helper()
	if msg := checkFailure(status, 0); msg != "" {
		s.t.Fatalf("sms sink: AlwaysFail(%q, %d): %s", to, status, msg)
	}
	s.program(to, failure{code: status, remaining: -1})
}

// program sets to's programmed failure.
func (s *SMSSink) program(to string, f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.fail(to, f)
}

// FailAll answers every request, whatever its recipient, with the HTTP status (e.g. 503) and a
// Twilio-style error body until FailAll(0) is called; programmed per-recipient failures are not
// consumed meanwhile. It is how a test makes the whole gateway flap. It may be called from any
// goroutine.
func (s *SMSSink) FailAll(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.setFailAll("SMSSink", status)
}

// AcceptedAnswer is how the sink answers a message it accepted, in place of its JSON with a sid.
type AcceptedAnswer struct {
	// Status is the 2xx status.
	Status      int
	ContentType string
	Body        string
	// Cut declares a body longer than Body and hangs up after writing Body, as a connection lost
	// in the middle of the answer.
	Cut bool
}

// AnswerAccepted makes the sink accept every message to to, as usual, and answer with a instead of
// its JSON with a sid: a gateway that took the message and said so in a way a client cannot read
// (an HTML page, an empty body, JSON without a sid, an answer cut short).
func (s *SMSSink) AnswerAccepted(to string, a AcceptedAnswer) {
	s.t.Helper()
	if a.Status < 200 || a.Status > 299 {
		s.t.Fatalf("sms sink: AnswerAccepted(%q, %+v): want a 2xx status", to, a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[to] = a
}

// Delay makes the sink wait d before answering a request to to, as a slow gateway would. A client
// that gives up first leaves nothing recorded.
func (s *SMSSink) Delay(to string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.delays[to] = d
}

// DelayTimes makes the sink wait d before answering the next n requests to to, then answer as
// programmed otherwise (Delay, if any, still applies; the longer of the two wins). A client that
// gives up first leaves nothing recorded. n of 0 removes the programmed delays.
func (s *SMSSink) DelayTimes(to string, n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script.delayTimes(to, n, d)
}
