package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/herald-notify/herald/delivery"
)

// The bench has sinks of its own rather than deliverytest's: those keep every message they
// receive (a few KB each: gigabytes for a million) and are built around a testing.TB. These keep
// nothing but the counts in the tracker, and speak the same protocols: SMTP without TLS or
// authentication, and a Twilio-style gateway with HTTP basic auth.

// SMS gateway credentials the bench gives Herald and checks.
const (
	smsAccountSID = "ACbench0000000000000000000000000001"
	smsAuthToken  = "herald-bench-token"
	smsFrom       = "+15005550006"
)

// arrival is what a sink reports: notification i arrived carrying id.
type arrival func(i int, id string)

// sinks are the loopback SMTP server and SMS gateway Herald delivers to during a run.
type sinks struct {
	smtpListener net.Listener
	smtpServer   *smtp.Server
	smsListener  net.Listener
	smsServer    *http.Server
	refused      atomic.Int64 // SMS requests refused (bad auth or form): a misconfiguration
	done         chan struct{}
}

// startSinks starts both sinks on 127.0.0.1 with ephemeral ports; each delivery calls got.
func startSinks(got arrival) (*sinks, error) {
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp sink: listen: %w", err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sl.Close()
		return nil, fmt.Errorf("sms sink: listen: %w", err)
	}
	s := &sinks{smtpListener: sl, smsListener: hl, done: make(chan struct{})}

	s.smtpServer = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{got: got}, nil
	}))
	s.smtpServer.Domain = "localhost"
	s.smtpServer.AllowInsecureAuth = true
	s.smtpServer.MaxMessageBytes = 1 << 20
	s.smtpServer.ReadTimeout = time.Minute
	s.smtpServer.WriteTimeout = time.Minute
	s.smtpServer.ErrorLog = log.New(io.Discard, "", 0)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.smsHandler(got))
	s.smsServer = &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}

	served := make(chan struct{}, 2)
	go func() { _ = s.smtpServer.Serve(sl); served <- struct{}{} }()
	go func() { _ = s.smsServer.Serve(hl); served <- struct{}{} }()
	go func() { <-served; <-served; close(s.done) }()
	return s, nil
}

// smtpAddr returns the SMTP sink's host and port.
func (s *sinks) smtpAddr() (string, int) {
	a := s.smtpListener.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// smsURL returns the SMS gateway's base URL.
func (s *sinks) smsURL() string { return "http://" + s.smsListener.Addr().String() }

// close stops both sinks.
func (s *sinks) close() {
	_ = s.smtpServer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.smsServer.Shutdown(ctx)
	_ = s.smtpListener.Close()
	_ = s.smsListener.Close()
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// smtpSession is one SMTP transaction: the recipients' numbers and the notification id header.
type smtpSession struct {
	got arrival
	to  []int
}

// Mail accepts any sender: Herald's is its own configuration's business.
func (ss *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt notes the number the recipient's address carries (-1 for a stranger's, which counts as
// unexpected) and accepts it.
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, recipientIndex(to))
	return nil
}

// Data reports one arrival per recipient, carrying the notification id of the message's header.
func (ss *smtpSession) Data(r io.Reader) error {
	// Only the header matters; the body is read to the end, as the protocol requires.
	// A header the sink cannot read is still a delivery: it counts without an id (and so as a
	// mismatch) rather than being refused, which would make Herald retry.
	br := bufio.NewReaderSize(r, 4096)
	h, _ := textproto.NewReader(br).ReadMIMEHeader()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	id := h.Get(delivery.HeaderNotificationID)
	for _, i := range ss.to {
		ss.got(i, id)
	}
	return nil
}

// Reset forgets the recipients, for the next message on the connection.
func (ss *smtpSession) Reset() { ss.to = ss.to[:0] }

// Logout has nothing to release.
func (ss *smtpSession) Logout() error { return nil }

// smsHandler is the gateway's send endpoint: it checks the credentials the bench gave Herald,
// reports the arrival with the idempotency token Herald sends as the notification id, and
// answers as Twilio does. What it refuses is counted: it means Herald is misconfigured.
func (s *sinks) smsHandler(got arrival) http.HandlerFunc {
	var sids atomic.Uint64
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		sid, token, ok := r.BasicAuth()
		if !ok || sid != smsAccountSID || token != smsAuthToken || r.PathValue("sid") != smsAccountSID {
			s.refused.Add(1)
			writeTwilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("To") == "" || r.PostForm.Get("Body") == "" {
			s.refused.Add(1)
			writeTwilioError(w, http.StatusBadRequest, 21602, "To and Body are required")
			return
		}
		got(recipientIndex(r.PostForm.Get("To")), r.Header.Get("I-Twilio-Idempotency-Token"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"SM%032x","status":"queued"}`, sids.Add(1))
	}
}

// writeTwilioError answers with an error in Twilio's shape, which Herald's SMS provider reads.
func writeTwilioError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"message":%s,"status":%d}`, code, strconv.Quote(message), status)
}
