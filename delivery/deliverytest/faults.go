package deliverytest

import "time"

// Switches for fault tests: a provider that is down for everyone for a while, and one that is slow
// only for the next few requests. They add to the per-recipient programs (FailTimes, AlwaysFail,
// Delay), which stay as they were.

// timedDelay is a delay for the next remaining requests to a recipient.
type timedDelay struct {
	d         time.Duration
	remaining int
}

// takeTimedDelay consumes one programmed timed delay from m for key and returns it, or 0.
func takeTimedDelay(m map[string]timedDelay, key string) time.Duration {
	td, ok := m[key]
	if !ok {
		return 0
	}
	td.remaining--
	if td.remaining <= 0 {
		delete(m, key)
	} else {
		m[key] = td
	}
	return td.d
}

// FailAll answers every request, whatever its recipient, with the HTTP status (e.g. 503) and a
// Twilio-style error body until FailAll(0) is called; programmed per-recipient failures are not
// consumed meanwhile. It is how a test makes the whole gateway flap. It may be called from any
// goroutine.
func (s *SMSSink) FailAll(status int) {
	if status != 0 && (status < 400 || status > 599) {
		panic("deliverytest: SMSSink.FailAll: want 0 or a 4xx or 5xx status")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAll = status
}

// DelayTimes makes the sink wait d before answering the next n requests to to, then answer as
// programmed otherwise (Delay, if any, still applies; the longer of the two wins). A client that
// gives up first leaves nothing recorded. n of 0 removes the programmed delays.
func (s *SMSSink) DelayTimes(to string, n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delayTimes = programTimedDelay(s.delayTimes, to, n, d)
}

func (s *SMSSink) takeTimedDelayLocked(to string) time.Duration {
	return takeTimedDelay(s.delayTimes, to)
}

// FailAll rejects RCPT TO for every recipient with the SMTP reply code (e.g. 451) until
// FailAll(0) is called; programmed per-recipient failures are not consumed meanwhile. It is how
// a test makes the whole relay flap. It may be called from any goroutine.
func (s *SMTPSink) FailAll(code int) {
	if code != 0 && (code < 400 || code > 599) {
		panic("deliverytest: SMTPSink.FailAll: want 0 or a 4xx or 5xx code")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAll = code
}

// DelayTimes makes the sink wait d after receiving the next n messages for recipient before it
// answers their DATA, then answer as programmed otherwise (Delay, if any, still applies; the
// longer of the two wins). As with Delay, a delayed message is still accepted afterwards, even if
// its client gave up meanwhile, unless the test ended. n of 0 removes the programmed delays.
func (s *SMTPSink) DelayTimes(recipient string, n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delayTimes = programTimedDelay(s.delayTimes, addressKey(recipient), n, d)
}

func (s *SMTPSink) takeTimedDelayLocked(key string) time.Duration {
	return takeTimedDelay(s.delayTimes, key)
}

func programTimedDelay(m map[string]timedDelay, key string, n int, d time.Duration) map[string]timedDelay {
	if m == nil {
		m = make(map[string]timedDelay)
	}
	if n <= 0 || d <= 0 {
		delete(m, key)
		return m
	}
	m[key] = timedDelay{d: d, remaining: n}
	return m
}
