package deliverytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// handleMessages is Twilio's Messages endpoint: it counts the attempt, holds it back as
// programmed, checks the credentials, rejects it as programmed or when a field is missing, and
// otherwise records the message and answers as a gateway that accepted it.
func (s *SMSSink) handleMessages(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, "Malformed request body: "+err.Error())
		return
	}
	to := r.PostForm.Get("To")
	if !s.hold(w, r, to) || !s.authorized(w, r) || s.rejected(w, to) || !requiredFields(w, r.PostForm) {
		return
	}
	sid, _, _ := r.BasicAuth()
	m := SMSMessage{
		SID:              newMessageSID(),
		AccountSID:       sid,
		To:               to,
		From:             r.PostForm.Get("From"),
		Body:             r.PostForm.Get("Body"),
		IdempotencyToken: r.Header.Get("I-Twilio-Idempotency-Token"),
		StatusCallback:   r.PostForm.Get("StatusCallback"),
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	close(s.received)
	s.received = make(chan struct{})
	answer, odd := s.answers[to]
	s.mu.Unlock()

	if odd {
		answer.write(w)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"sid": m.SID, "account_sid": m.AccountSID, "to": m.To, "from": m.From, "body": m.Body, "status": "queued",
	})
}

// hold counts an attempt for to and waits as long as its script says. It reports false when the
// request is over meanwhile: its client gave up, or the test ended (answered 503).
func (s *SMSSink) hold(w http.ResponseWriter, r *http.Request, to string) bool {
	s.mu.Lock()
	s.script.attempts[to]++
	delay := s.script.delayFor(to)
	s.mu.Unlock()
	if delay <= 0 {
		return true
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		writeTwilioError(w, http.StatusServiceUnavailable, 20503, "Sink stopped")
		return false
	}
}

// authorized checks HTTP Basic auth and the account in the path, answering 401 or 404 if wrong.
func (s *SMSSink) authorized(w http.ResponseWriter, r *http.Request) bool {
	sid, token, ok := r.BasicAuth()
	if !ok || sid != s.AccountSID || token != s.AuthToken {
		writeTwilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	if r.PathValue("sid") != s.AccountSID {
		writeTwilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return false
	}
	return true
}

// rejected answers with the failure programmed for to, if one is due, and reports whether it did.
func (s *SMSSink) rejected(w http.ResponseWriter, to string) bool {
	s.mu.Lock()
	status, _, failed := s.script.takeFailure(to)
	s.mu.Unlock()
	if !failed {
		return false
	}
	code, message := 20000+status, http.StatusText(status)
	if status == http.StatusBadRequest {
		code, message = 21211, "The 'To' number is not a valid phone number."
	}
	writeTwilioError(w, status, code, message)
	return true
}

// requiredFields answers Twilio's 400 for a missing To, From or Body, and reports whether all
// three are there.
func requiredFields(w http.ResponseWriter, form url.Values) bool {
	switch {
	case form.Get("To") == "":
		writeTwilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	case form.Get("From") == "":
		writeTwilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
	case form.Get("Body") == "":
		writeTwilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
	default:
		return true
	}
	return false
}

// write answers as a says: its status, content type and body, cut short if asked.
func (a AcceptedAnswer) write(w http.ResponseWriter) {
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	}
	if a.Cut {
		w.Header().Set("Content-Length", strconv.Itoa(len(a.Body)+64))
	}
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
	if a.Cut {
		// What was written goes out; then the connection is dropped.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
}

// writeTwilioError answers status with a Twilio-shaped error body.
func writeTwilioError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   message,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		"status":    status,
	})
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An encoding failure means the client went away; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// newMessageSID returns a Twilio-shaped message sid: "SM" and 32 hex digits.
func newMessageSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "SM" + hex.EncodeToString(b[:])
}
