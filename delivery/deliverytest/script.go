package deliverytest

import "time"

// script is what a test has told a sink to do with the requests for each recipient: count them,
// reject them (a number of times, always, or everyone's for a while) and hold them back. Both
// sinks keep one; they differ only in how they key a recipient and how a rejection looks on the
// wire (an SMTP reply, an HTTP status with a Twilio error). The sink's mutex guards it.
type script struct {
	attempts map[string]int
	failures map[string]failure
	delays   map[string]time.Duration
	// timedDelays hold back only the next few requests (DelayTimes).
	timedDelays map[string]timedDelay
	// failAll rejects every recipient with this code while it is not 0 (FailAll).
	failAll int
}

// failure is a programmed rejection: code is the SMTP reply or HTTP status, remaining how many
// more attempts get it (negative: all of them).
type failure struct {
	code      int
	remaining int
}

// timedDelay is a delay for the next remaining requests to a recipient.
type timedDelay struct {
	d         time.Duration
	remaining int
}

// newScript returns a script that accepts everything at once.
func newScript() script {
	return script{
		attempts:    make(map[string]int),
		failures:    make(map[string]failure),
		delays:      make(map[string]time.Duration),
		timedDelays: make(map[string]timedDelay),
	}
}

// checkFailure says what is wrong with a failure a test programs, or "" when nothing is: a sink
// answers only 4xx and 5xx rejections, and a count is never negative.
func checkFailure(code, n int) string {
	if code < 400 || code > 599 || n < 0 {
		return "want n >= 0 and a 4xx or 5xx code"
	}
	return ""
}

// fail programs f for key; a failure with no remaining attempts removes the one programmed.
func (s *script) fail(key string, f failure) {
	if f.remaining == 0 {
		delete(s.failures, key)
		return
	}
	s.failures[key] = f
}

// delayTimes holds back the next n requests for key by d; n or d of 0 removes the programmed
// delays.
func (s *script) delayTimes(key string, n int, d time.Duration) {
	if n <= 0 || d <= 0 {
		delete(s.timedDelays, key)
		return
	}
	s.timedDelays[key] = timedDelay{d: d, remaining: n}
}

// delayFor returns how long to hold back a request for key: the longer of its standing delay
// and its next timed one, which it consumes.
func (s *script) delayFor(key string) time.Duration {
	return max(s.delays[key], s.takeTimedDelay(key))
}

// setFailAll starts (code) or ends (0) the rejection of everyone; sink names the caller in the
// panic a bad code causes.
func (s *script) setFailAll(sink string, code int) {
	if code != 0 && (code < 400 || code > 599) {
		panic("deliverytest: " + sink + ".FailAll: want 0 or a 4xx or 5xx code")
	}
	s.failAll = code
}

// takeTimedDelay consumes one of key's timed delays and returns it, or 0 when none is left.
func (s *script) takeTimedDelay(key string) time.Duration {
	td, ok := s.timedDelays[key]
	if !ok {
		return 0
	}
	td.remaining--
	if td.remaining <= 0 {
		delete(s.timedDelays, key)
	} else {
		s.timedDelays[key] = td
	}
	return td.d
}

// takeFailure returns the rejection due for a request for key, if any, and whether it is the
// rejection of everyone (FailAll), which leaves the recipient's own programmed failures for
// after it.
func (s *script) takeFailure(key string) (code int, everyone, failed bool) {
	if s.failAll != 0 {
		return s.failAll, true, true
	}
	f, ok := s.failures[key]
	if !ok {
		return 0, false, false
	}
	if f.remaining > 0 {
		f.remaining--
		if f.remaining == 0 {
			delete(s.failures, key)
		} else {
			s.failures[key] = f
		}
	}
	return f.code, false, true
}
