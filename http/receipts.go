package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/wire"
)

// StatusRecorder records the SMS gateway's status callbacks (see receipts.Recorder).
type StatusRecorder interface {
	// Record says what became of cb; EINVALID for a callback without a message id or status,
	// or naming something that is not a notification id.
	Record(ctx context.Context, cb receipts.StatusCallback) (receipts.Outcome, error)
}

var _ StatusRecorder = (*receipts.Recorder)(nil)

// SMSReceipts is what the SMS gateway's callbacks are taken in with. The routes are outside
// the API keys: the gateway's signature is their authentication.
type SMSReceipts struct {
	// Verifier checks the gateway's signatures. Without one (no public URL, or no auth token
	// configured) both routes answer 404: nothing unsigned is ever taken in.
	Verifier *receipts.Verifier
	// Status records the status callbacks.
	Status StatusRecorder
	// OptOuts takes recipients' STOP and START; without one the inbound route answers 404.
	OptOuts receipts.OptOuts
}

// WithReceipts adds the SMS gateway's callbacks to s: POST /api/v1/receipts/sms (status
// callbacks) and POST /api/v1/receipts/sms/inbound (messages recipients send, for opt-outs).
func (s *Server) WithReceipts(r SMSReceipts) *Server {
	s.receipts = &r
	if s.cfg.Metrics != nil {
		s.receiptMetrics = newReceiptMetrics(s.cfg.Metrics)
	}
	return s
}

// receiptMetrics counts the gateway's callbacks by what became of them.
type receiptMetrics struct {
	callbacks *prometheus.CounterVec
}

func newReceiptMetrics(reg prometheus.Registerer) *receiptMetrics {
	m := &receiptMetrics{callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "sms", Name: "callbacks_total",
		Help: "SMS gateway callbacks by callback (status, inbound) and outcome (status: recorded, duplicate, intermediate, unmatched, mismatched, early; inbound: opt_out, opt_in, none; both: forged, invalid, error).",
	}, []string{"callback", "outcome"})}
	reg.MustRegister(m.callbacks)
	return m
}

// count adds one callback of kind with outcome to the metric, when there is one.
func (s *Server) countReceipt(kind, outcome string) {
	if s.receiptMetrics != nil {
		s.receiptMetrics.callbacks.WithLabelValues(kind, outcome).Inc()
	}
}

// Outcomes of a callback the edge decides, beside the receipts' own.
const (
	receiptInvalid = "invalid"
	receiptError   = "error"
)

// emptyTwiML answers an inbound message with nothing: the gateway sends no reply.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// earlyRetryAfter is the Retry-After of a callback answered 503 because its notification was not
// recorded sent yet: the gateway, if its retry policy retries, should find it sent by then.
const earlyRetryAfter = "5"

// smsStatus takes in a status callback: 204 when it was recorded or needed nothing (a repeat,
// an intermediate status), 404 for a message Herald did not send (or a notification that
// failed), 409 for a notification sent as another message than the callback's, 503 with
// Retry-After for a notification not recorded sent within the recorder's wait, 403 unsigned.
// The notification a callback concerns is named in the query of the URL the gateway signed.
func (s *Server) smsStatus(w http.ResponseWriter, r *http.Request) {
	const kind = "status"
	if s.receipts.Verifier == nil {
		s.writeError(w, r, herald.Errorf(herald.ENOTFOUND,
			"SMS status callbacks are off on this server: it needs its public URL and the SMS gateway's auth token"))
		return
	}
	form, err := s.signedForm(w, r, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cb := receipts.StatusCallback{NotificationID: r.URL.Query().Get(receipts.NotificationParam),
		MessageSID: form.Get("MessageSid"), MessageStatus: form.Get("MessageStatus"),
		ErrorCode: form.Get("ErrorCode"), ErrorMessage: form.Get("ErrorMessage"),
		To: form.Get("To"), From: form.Get("From"), AccountSID: form.Get("AccountSid"),
	}
	outcome, err := s.receipts.Status.Record(r.Context(), cb)
	switch {
	case err != nil:
		s.countReceipt(kind, failure(err))
		s.writeError(w, r, err)
	case outcome == receipts.OutcomeUnmatched:
		s.countReceipt(kind, string(outcome))
		s.logger.InfoContext(r.Context(), "sms status callback for a message Herald did not send",
			"notification_id", cb.NotificationID, "provider_message_id", cb.MessageSID, "status", cb.MessageStatus,
			"correlation_id", herald.CorrelationID(r.Context()))
		if cb.NotificationID != "" {
			s.writeError(w, r, herald.Errorf(herald.ENOTFOUND, "notification %s is not an SMS that was sent", cb.NotificationID))
			return
		}
		s.writeError(w, r, herald.Errorf(herald.ENOTFOUND, "no notification was sent with message %s", cb.MessageSID))
	case outcome == receipts.OutcomeMismatched:
		s.countReceipt(kind, string(outcome))
		s.writeError(w, r, herald.Errorf(herald.ECONFLICT, "notification %s was sent as another message than %s", cb.NotificationID, cb.MessageSID))
	case outcome == receipts.OutcomeEarly:
		// Not an error of Herald's: the worker has yet to record the send. Answered directly, so
		// that it is logged once, here, at warn.
		s.countReceipt(kind, string(outcome))
		s.logger.WarnContext(r.Context(), "sms status callback before its notification was recorded sent; the gateway may post it again",
			"notification_id", cb.NotificationID, "provider_message_id", cb.MessageSID, "status", cb.MessageStatus,
			"correlation_id", herald.CorrelationID(r.Context()))
		w.Header().Set("Retry-After", earlyRetryAfter)
		writeJSON(w, http.StatusServiceUnavailable, wire.NewError(herald.EUNAVAILABLE,
			fmt.Sprintf("notification %s is not recorded sent yet; post the report again later", cb.NotificationID), nil))
	default:
		s.countReceipt(kind, string(outcome))
		w.WriteHeader(http.StatusNoContent)
	}
}

// smsInbound takes in a message a recipient sent: STOP and its like opt the sender out, START
// and its like back in, anything else is left alone. It answers an empty TwiML reply.
func (s *Server) smsInbound(w http.ResponseWriter, r *http.Request) {
	const kind = "inbound"
	if s.receipts.Verifier == nil || s.receipts.OptOuts == nil {
		s.writeError(w, r, herald.Errorf(herald.ENOTFOUND,
			"SMS opt-outs are off on this server: it needs its public URL, the SMS gateway's auth token and a place to keep opt-outs"))
		return
	}
	form, err := s.signedForm(w, r, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m := receipts.InboundMessage{MessageSID: form.Get("MessageSid"), From: form.Get("From"), To: form.Get("To"),
		Body: form.Get("Body"), OptOutType: form.Get("OptOutType")}
	req, err := receipts.TakeInbound(r.Context(), s.receipts.OptOuts, m)
	if err != nil {
		s.countReceipt(kind, failure(err))
		s.writeError(w, r, err)
		return
	}
	s.countReceipt(kind, string(req))
	if req != receipts.RequestNone {
		s.logger.InfoContext(r.Context(), "sms "+string(req), "provider_message_id", m.MessageSID,
			"correlation_id", herald.CorrelationID(r.Context()))
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// failure is the metric's outcome of a callback that failed with err.
func failure(err error) string {
	if herald.ErrorCode(err) == herald.EINVALID {
		return receiptInvalid
	}
	return receiptError
}

// signedForm reads the form the gateway posted and checks its signature: 415 for a body that is
// not a form, 413 too large, 400 unreadable, 403 (logged at warn) for a missing or wrong
// signature. Only the body's parameters are signed as parameters; the query is part of the URL.
func (s *Server) signedForm(w http.ResponseWriter, r *http.Request, kind string) (url.Values, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		s.countReceipt(kind, receiptInvalid)
		return nil, &herald.Error{Code: codeUnsupportedMedia,
			Message: fmt.Sprintf("Content-Type %q is not a form: the gateway posts application/x-www-form-urlencoded", ct)}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.countReceipt(kind, receiptInvalid)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &herald.Error{Code: codeTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		}
		return nil, &herald.Error{Code: codeMalformed, Message: "the form could not be read: " + err.Error()}
	}
	sig := r.Header.Get(receipts.SignatureHeader)
	if !s.receipts.Verifier.Verify(r.URL.RequestURI(), r.PostForm, sig) {
		s.countReceipt(kind, string(receipts.OutcomeForged))
		s.logger.WarnContext(r.Context(), "sms callback refused: missing or wrong gateway signature",
			"callback", kind, "path", r.URL.Path, "signed", sig != "", "client_ip", chimw.GetClientIP(r.Context()),
			"correlation_id", herald.CorrelationID(r.Context()))
		return nil, &herald.Error{Code: herald.EFORBIDDEN,
			Message: "the request does not carry the SMS gateway's valid " + receipts.SignatureHeader + " signature"}
	}
	return r.PostForm, nil
}
