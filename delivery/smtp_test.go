package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gomail "github.com/wneessen/go-mail"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/delivery/deliverytest"
)

// newSMTP returns a provider pointed at sink, in clear, with cfg adjusted by adjust.
func newSMTP(t testing.TB, sink *deliverytest.SMTPSink, adjust func(*delivery.SMTPConfig)) *delivery.SMTP {
	t.Helper()
	cfg := delivery.SMTPConfig{
		Host:    sink.Host(),
		Port:    sink.Port(),
		From:    "Herald <herald@example.com>",
		TLS:     delivery.TLSNone,
		Timeout: 10 * time.Second,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	p, err := delivery.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP(%+v): %v", cfg, err)
	}
	return p
}

func email(id, recipient string) delivery.Message {
	return delivery.Message{
		NotificationID: id,
		Attempt:        1,
		Channel:        herald.ChannelEmail,
		Recipient:      recipient,
		Subject:        "Grüße aus Herald",
		Body:           "Hello Bob,\nyour code is 1234.\n— Herald",
	}
}

// headerAddress parses the address header key of m.
func headerAddress(t *testing.T, m deliverytest.SMTPMessage, key string) mail.Address {
	t.Helper()
	a, err := m.Header.AddressList(key)
	if err != nil || len(a) != 1 {
		t.Fatalf("header %s = %q: want one address (err %v)", key, m.Header.Get(key), err)
	}
	return *a[0]
}

func TestSMTPSend(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, nil)

	id, err := p.Send(context.Background(), email("ntf-0001", "Bob <bob@example.net>"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if want := "ntf-0001@example.com"; id != want {
		t.Errorf("Send id = %q, want %q", id, want)
	}

	got := sink.Received("bob@example.net")
	if len(got) != 1 || sink.Count() != 1 {
		t.Fatalf("sink received %d messages for bob (%d in all), want exactly 1", len(got), sink.Count())
	}
	type view struct {
		EnvelopeFrom   string
		EnvelopeTo     []string
		From, To       mail.Address
		Subject        string
		Body           string
		MessageID      string
		NotificationID string
		ContentType    string
	}
	wantView := view{
		EnvelopeFrom:   "herald@example.com",
		EnvelopeTo:     []string{"bob@example.net"},
		From:           mail.Address{Name: "Herald", Address: "herald@example.com"},
		To:             mail.Address{Name: "Bob", Address: "bob@example.net"},
		Subject:        "Grüße aus Herald",
		Body:           "Hello Bob,\nyour code is 1234.\n— Herald",
		MessageID:      "ntf-0001@example.com",
		NotificationID: "ntf-0001",
		ContentType:    "text/plain; charset=UTF-8",
	}
	m := got[0]
	gotView := view{
		EnvelopeFrom:   m.From,
		EnvelopeTo:     m.To,
		From:           headerAddress(t, m, "From"),
		To:             headerAddress(t, m, "To"),
		Subject:        m.Subject,
		Body:           m.Body,
		MessageID:      m.MessageID,
		NotificationID: m.NotificationID,
		ContentType:    m.Header.Get("Content-Type"),
	}
	if diff := cmp.Diff(wantView, gotView); diff != "" {
		t.Errorf("received message mismatch (-want +got):\n%s", diff)
	}
}

// TestSMTPSendsHTMLAsAlternative: a message with HTML arrives as multipart/alternative, the text
// part first and the HTML last, each UTF-8 with a transfer encoding that carries long lines and
// non-ASCII text, and decodes to exactly what was sent; the headers that tie it to its
// notification and the return path are those of a text-only message.
func TestSMTPSendsHTMLAsAlternative(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.BounceDomain = "bounces.herald.test" })
	m := email("ntf-html-1", "Bob <bob@example.net>")
	m.HTML = "<!DOCTYPE html>\n<html><body><h1>Grüße, Bob</h1>\n<p style=\"color: #333\">Your code is <b>1234</b>. " +
		strings.Repeat("A line far longer than any SMTP line may be. ", 40) + "</p>\n</body></html>"
	if _, err := p.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := sink.Received("bob@example.net")
	if len(got) != 1 {
		t.Fatalf("sink received %d messages for bob, want 1", len(got))
	}
	msg := got[0]
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q, want multipart/alternative with a boundary", msg.Header.Get("Content-Type"))
	}
	type part struct{ ContentType, Encoding, Body string }
	want := []part{
		{"text/plain; charset=UTF-8", "quoted-printable", m.Body},
		{"text/html; charset=UTF-8", "quoted-printable", m.HTML},
	}
	var parts []part
	for _, p := range msg.Parts {
		parts = append(parts, part{p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Body})
	}
	if diff := cmp.Diff(want, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	for _, line := range strings.Split(string(msg.Data), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("a line of %d bytes was transmitted; SMTP allows 998", len(line))
		}
	}
	headers := []string{msg.MessageID, msg.NotificationID, msg.From}
	if diff := cmp.Diff([]string{"ntf-html-1@example.com", "ntf-html-1", "bounces+ntf-html-1@bounces.herald.test"}, headers); diff != "" {
		t.Errorf("Message-ID, X-Herald-Notification-Id, return path (-want +got):\n%s", diff)
	}

	// Without HTML the message stays a single text part.
	if _, err := p.Send(context.Background(), email("ntf-text-1", "carol@example.net")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	plain := sink.Received("carol@example.net")
	if len(plain) != 1 || plain[0].Header.Get("Content-Type") != "text/plain; charset=UTF-8" || plain[0].Parts != nil {
		t.Errorf("a message without HTML arrived as %+v, want one text/plain part", plain)
	}
}

// TestSMTPReturnPath: with a bounce domain the envelope sender names the notification (VERP) and
// the From header stays the configured sender; without one the envelope sender is From's address.
func TestSMTPReturnPath(t *testing.T) {
	tests := []struct {
		name         string
		adjust       func(*delivery.SMTPConfig)
		wantEnvelope string
	}{
		{name: "no bounce domain", wantEnvelope: "herald@example.com"},
		{
			name:         "bounce domain",
			adjust:       func(c *delivery.SMTPConfig) { c.BounceDomain = "bounces.herald.test" },
			wantEnvelope: "bounces+ntf-42@bounces.herald.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, tt.adjust)
			if _, err := p.Send(context.Background(), email("ntf-42", "bob@example.net")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := sink.Received("bob@example.net")
			if len(got) != 1 {
				t.Fatalf("sink received %d messages for bob, want 1", len(got))
			}
			if got[0].From != tt.wantEnvelope {
				t.Errorf("envelope sender = %q, want %q", got[0].From, tt.wantEnvelope)
			}
			if from := headerAddress(t, got[0], "From"); from.Address != "herald@example.com" {
				t.Errorf("From header = %q, want herald@example.com", from.Address)
			}
			if h := got[0].Header.Get("EnvelopeFrom"); h != "" {
				t.Errorf("the envelope sender leaked into the headers: EnvelopeFrom: %s", h)
			}
		})
	}
}

func TestSMTPMessageID(t *testing.T) {
	tests := []struct {
		name   string
		adjust func(*delivery.SMTPConfig)
		want   string
	}{
		{name: "domain of From by default", want: "ntf-7@example.com"},
		{
			name:   "configured domain",
			adjust: func(c *delivery.SMTPConfig) { c.MessageIDDomain = "mail.herald.test" },
			want:   "ntf-7@mail.herald.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, tt.adjust)

			// Receivers de-duplicate on the Message-ID, so a retry must carry the same one.
			for attempt := 1; attempt <= 2; attempt++ {
				m := email("ntf-7", "bob@example.net")
				m.Attempt = attempt
				id, err := p.Send(context.Background(), m)
				if err != nil {
					t.Fatalf("Send attempt %d: %v", attempt, err)
				}
				if id != tt.want {
					t.Errorf("Send attempt %d id = %q, want %q", attempt, id, tt.want)
				}
			}
			var got []string
			for _, m := range sink.Messages() {
				got = append(got, m.MessageID)
			}
			if diff := cmp.Diff([]string{tt.want, tt.want}, got); diff != "" {
				t.Errorf("received Message-IDs mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSMTPRejections also pins down what go-mail reports for a rejected RCPT TO, since the
// classification relies on it.
func TestSMTPRejections(t *testing.T) {
	tests := []struct {
		name          string
		program       func(s *deliverytest.SMTPSink, rcpt string)
		wantPermanent bool
		wantCode      int
		wantTemp      bool
	}{
		{
			name:     "451 is transient",
			program:  func(s *deliverytest.SMTPSink, rcpt string) { s.FailTimes(rcpt, 1, 451) },
			wantCode: 451, wantTemp: true,
		},
		{
			name:     "421 is transient",
			program:  func(s *deliverytest.SMTPSink, rcpt string) { s.FailTimes(rcpt, 1, 421) },
			wantCode: 421, wantTemp: true,
		},
		{
			name:          "550 is permanent",
			program:       func(s *deliverytest.SMTPSink, rcpt string) { s.AlwaysFail(rcpt, 550) },
			wantPermanent: true, wantCode: 550, wantTemp: false,
		},
		{
			name:          "553 is permanent",
			program:       func(s *deliverytest.SMTPSink, rcpt string) { s.AlwaysFail(rcpt, 553) },
			wantPermanent: true, wantCode: 553, wantTemp: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rcpt = "carol@example.net"
			sink := deliverytest.NewSMTPSink(t)
			tt.program(sink, rcpt)
			p := newSMTP(t, sink, nil)

			_, err := p.Send(context.Background(), email("ntf-1", rcpt))
			if err == nil {
				t.Fatal("Send: got nil error, want a rejection")
			}
			if got := delivery.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%v) = %t, want %t", err, got, tt.wantPermanent)
			}
			var sendErr *gomail.SendError
			if !errors.As(err, &sendErr) {
				t.Fatalf("error %v does not hold a *mail.SendError", err)
			}
			if sendErr.Reason != gomail.ErrSMTPRcptTo || sendErr.ErrorCode() != tt.wantCode || sendErr.IsTemp() != tt.wantTemp {
				t.Errorf("SendError reason %q, code %d, temp %t; want %q, %d, %t",
					sendErr.Reason, sendErr.ErrorCode(), sendErr.IsTemp(), gomail.ErrSMTPRcptTo, tt.wantCode, tt.wantTemp)
			}
			if n := sink.Count(); n != 0 {
				t.Errorf("sink accepted %d messages, want 0", n)
			}
		})
	}
}

func TestSMTPRetryAfterTransientRejection(t *testing.T) {
	const rcpt = "dave@example.net"
	sink := deliverytest.NewSMTPSink(t)
	sink.FailTimes(rcpt, 1, 451)
	p := newSMTP(t, sink, nil)

	if _, err := p.Send(context.Background(), email("ntf-2", rcpt)); err == nil || delivery.IsPermanent(err) {
		t.Fatalf("first Send: err = %v, want a transient error", err)
	}
	if _, err := p.Send(context.Background(), email("ntf-2", rcpt)); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if got := sink.Attempts(rcpt); got != 2 {
		t.Errorf("Attempts = %d, want 2", got)
	}
	if got := len(sink.Received(rcpt)); got != 1 {
		t.Errorf("received %d messages, want 1", got)
	}
}

// closedAddr returns a loopback address nothing listens on: a port just released by the kernel.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestSMTPConnectionRefused(t *testing.T) {
	host, port, err := net.SplitHostPort(closedAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	p, err := delivery.NewSMTP(delivery.SMTPConfig{Host: host, Port: portNum, From: "herald@example.com", TLS: delivery.TLSNone, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	_, err = p.Send(context.Background(), email("ntf-3", "bob@example.net"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Send to a closed port: err = %v, want connection refused", err)
	}
	if delivery.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
}

func TestSMTPTimeout(t *testing.T) {
	const rcpt = "slow@example.net"
	sink := deliverytest.NewSMTPSink(t)
	sink.Delay(rcpt, time.Minute)
	p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.Timeout = 300 * time.Millisecond })

	start := time.Now()
	_, err := p.Send(context.Background(), email("ntf-4", rcpt))
	elapsed := time.Since(start)

	if err == nil {
		t.Fatal("Send to a stalling server: got nil error")
	}
	if delivery.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", elapsed)
	}
	if sink.Attempts(rcpt) != 1 {
		t.Errorf("Attempts = %d, want 1: the timeout must hit during the conversation", sink.Attempts(rcpt))
	}
}

// TestSMTPContext checks that ctx stops a conversation in progress, not only the dial: the sink
// stalls after DATA for a minute while the provider's own timeout is longer still.
func TestSMTPContext(t *testing.T) {
	tests := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			cause: context.DeadlineExceeded,
		},
		{
			name: "cancel",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
			cause: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rcpt = "slow@example.net"
			sink := deliverytest.NewSMTPSink(t)
			sink.Delay(rcpt, time.Minute)
			p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.Timeout = 5 * time.Minute })
			ctx, cancel := tt.ctx()
			defer cancel()

			start := time.Now()
			_, err := p.Send(ctx, email("ntf-5", rcpt))
			elapsed := time.Since(start)

			if !errors.Is(err, tt.cause) {
				t.Errorf("Send: err = %v, want %v", err, tt.cause)
			}
			if delivery.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = true, want false", err)
			}
			if elapsed > 10*time.Second {
				t.Errorf("Send took %s after ctx ended at 300ms", elapsed)
			}
		})
	}
}

// TestSMTPTLSModes runs each mode against a server that offers no TLS at all.
func TestSMTPTLSModes(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string // "" for success
	}{
		{mode: delivery.TLSNone},
		{mode: delivery.TLSStartTLS},
		{mode: ""}, // defaults to starttls
		{mode: delivery.TLSRequire, wantErr: "STARTTLS"},
		{mode: delivery.TLSImplicit, wantErr: "tls"},
	}
	for _, tt := range tests {
		t.Run("mode="+tt.mode, func(t *testing.T) {
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.TLS = tt.mode })

			_, err := p.Send(context.Background(), email("ntf-6", "bob@example.net"))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if sink.Count() != 1 {
					t.Errorf("sink accepted %d messages, want 1", sink.Count())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Send: err = %v, want one mentioning %q", err, tt.wantErr)
			}
			if delivery.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = true, want false", err)
			}
			if sink.Count() != 0 {
				t.Errorf("sink accepted %d messages, want 0", sink.Count())
			}
		})
	}
}

func TestSMTPAuthenticatesOnlyWithUsername(t *testing.T) {
	// The sink offers no AUTH, so a provider that tries to authenticate fails before MAIL FROM.
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.Username, c.Password = "herald", "secret" })

	_, err := p.Send(context.Background(), email("ntf-8", "bob@example.net"))
	if err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("Send with a username to a server without AUTH: err = %v, want an AUTH error", err)
	}
	if sink.Count() != 0 {
		t.Errorf("sink accepted %d messages, want 0", sink.Count())
	}
}

func TestSMTPPermanentWithoutSending(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*delivery.Message)
	}{
		{name: "recipient is not an address", modify: func(m *delivery.Message) { m.Recipient = "not an address" }},
		{name: "empty recipient", modify: func(m *delivery.Message) { m.Recipient = "" }},
		{name: "empty notification id", modify: func(m *delivery.Message) { m.NotificationID = "" }},
		{name: "notification id breaks the Message-ID", modify: func(m *delivery.Message) { m.NotificationID = "a@b>" }},
		{name: "sms message", modify: func(m *delivery.Message) { m.Channel = herald.ChannelSMS }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, nil)
			m := email("ntf-9", "bob@example.net")
			tt.modify(&m)

			_, err := p.Send(context.Background(), m)
			if !delivery.IsPermanent(err) {
				t.Errorf("Send(%+v): err = %v, want a permanent error", m, err)
			}
			if n := sink.Attempts(m.Recipient) + sink.Count(); n != 0 {
				t.Errorf("sink saw %d attempts or messages, want none", n)
			}
		})
	}
}

func TestNewSMTP(t *testing.T) {
	valid := delivery.SMTPConfig{Host: "smtp.example.com", From: "Herald <herald@example.com>"}
	tests := []struct {
		name    string
		adjust  func(*delivery.SMTPConfig)
		wantErr string // "" for a valid config
	}{
		{name: "minimal"},
		{name: "implicit tls", adjust: func(c *delivery.SMTPConfig) { c.TLS = delivery.TLSImplicit }},
		{name: "credentials", adjust: func(c *delivery.SMTPConfig) { c.Username, c.Password = "u", "p" }},
		{name: "missing host", adjust: func(c *delivery.SMTPConfig) { c.Host = "" }, wantErr: "host is required"},
		{name: "missing from", adjust: func(c *delivery.SMTPConfig) { c.From = "" }, wantErr: "from is required"},
		{name: "bad from", adjust: func(c *delivery.SMTPConfig) { c.From = "herald at example" }, wantErr: `from "herald at example" is not an email address`},
		{name: "unknown tls mode", adjust: func(c *delivery.SMTPConfig) { c.TLS = "ssl" }, wantErr: `unknown tls mode "ssl"`},
		{name: "port out of range", adjust: func(c *delivery.SMTPConfig) { c.Port = 70000 }, wantErr: "port 70000 is out of range"},
		{name: "negative timeout", adjust: func(c *delivery.SMTPConfig) { c.Timeout = -time.Second }, wantErr: "timeout -1s is negative"},
		{name: "pool settings", adjust: func(c *delivery.SMTPConfig) { c.MaxIdle, c.IdleTimeout = 1, time.Second }},
		{name: "negative max idle", adjust: func(c *delivery.SMTPConfig) { c.MaxIdle = -1 }, wantErr: "max idle -1 is negative"},
		{name: "negative idle timeout", adjust: func(c *delivery.SMTPConfig) { c.IdleTimeout = -time.Second }, wantErr: "idle timeout -1s is negative"},
		{name: "password without username", adjust: func(c *delivery.SMTPConfig) { c.Password = "p" }, wantErr: "password is set but username is empty"},
		{name: "bad message-id domain", adjust: func(c *delivery.SMTPConfig) { c.MessageIDDomain = "exa mple.com" }, wantErr: `message-id domain "exa mple.com"`},
		{name: "bad bounce domain", adjust: func(c *delivery.SMTPConfig) { c.BounceDomain = "bad domain" }, wantErr: `bounce domain "bad domain"`},
		{
			name:    "every problem at once",
			adjust:  func(c *delivery.SMTPConfig) { *c = delivery.SMTPConfig{TLS: "tls"} },
			wantErr: `smtp config: host is required; from is required; unknown tls mode "tls"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			if tt.adjust != nil {
				tt.adjust(&cfg)
			}
			p, err := delivery.NewSMTP(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewSMTP(%+v): %v", cfg, err)
				}
				if p.Name() != "smtp" {
					t.Errorf("Name() = %q, want %q", p.Name(), "smtp")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewSMTP(%+v): err = %v, want one containing %q", cfg, err, tt.wantErr)
			}
		})
	}
}

// eventually fails the test unless cond becomes true within a few seconds. The sink learns that a
// client hung up only when its next read fails, so counts of open connections lag a little.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendAll sends one email per id to recipient, in order, and fails the test on the first error.
func sendAll(t *testing.T, p *delivery.SMTP, recipient string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := p.Send(context.Background(), email(id, recipient)); err != nil {
			t.Fatalf("Send %s: %v", id, err)
		}
	}
}

// notificationIDs returns the sorted notification ids of the messages sink accepted.
func notificationIDs(sink *deliverytest.SMTPSink) []string {
	var ids []string
	for _, m := range sink.Messages() {
		ids = append(ids, m.NotificationID)
	}
	slices.Sort(ids)
	return ids
}

func TestSMTPReusesConnection(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, nil)

	ids := []string{"ntf-r1", "ntf-r2", "ntf-r3", "ntf-r4", "ntf-r5"}
	sendAll(t, p, "bob@example.net", ids...)

	if n := sink.Connections(); n != 1 {
		t.Errorf("sink saw %d connections for %d sequential sends, want 1", n, len(ids))
	}
	if diff := cmp.Diff(ids, notificationIDs(sink)); diff != "" {
		t.Errorf("received notification ids mismatch (-want +got):\n%s", diff)
	}
	for _, m := range sink.Messages() {
		if want := m.NotificationID + "@example.com"; m.MessageID != want || !slices.Equal(m.To, []string{"bob@example.net"}) {
			t.Errorf("message %s: Message-ID %q, envelope To %q; want %q and [bob@example.net]", m.NotificationID, m.MessageID, m.To, want)
		}
	}
}

func TestSMTPConcurrentSends(t *testing.T) {
	tests := []struct {
		name        string
		maxIdle     int
		idleTimeout time.Duration
	}{
		{name: "default pool"},
		{name: "pool smaller than concurrency", maxIdle: 2},
		// Connections expire while others are being taken and returned: the race detector
		// watches the hand-over between a Send and an expiry.
		{name: "idle timeout shorter than a send", idleTimeout: time.Millisecond},
	}
	const (
		concurrency = 8
		perSender   = 25
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.MaxIdle, c.IdleTimeout = tt.maxIdle, tt.idleTimeout })
			maxIdle := tt.maxIdle
			if maxIdle == 0 {
				maxIdle = 8 // the default
			}

			var (
				wg   sync.WaitGroup
				want []string
			)
			for g := range concurrency {
				var ids []string
				for i := range perSender {
					ids = append(ids, fmt.Sprintf("ntf-c%d-%02d", g, i))
				}
				want = append(want, ids...)
				wg.Go(func() {
					for _, id := range ids {
						if _, err := p.Send(context.Background(), email(id, "Bob <bob@example.net>")); err != nil {
							t.Errorf("Send %s: %v", id, err)
						}
					}
				})
			}
			wg.Wait()

			slices.Sort(want)
			if diff := cmp.Diff(want, notificationIDs(sink)); diff != "" {
				t.Errorf("received notification ids mismatch (-want +got):\n%s", diff)
			}
			for _, m := range sink.Messages() {
				if m.MessageID != m.NotificationID+"@example.com" || m.Header.Get("To") != "\"Bob\" <bob@example.net>" || !slices.Equal(m.To, []string{"bob@example.net"}) {
					t.Errorf("message %s: Message-ID %q, To %q, envelope To %q", m.NotificationID, m.MessageID, m.Header.Get("To"), m.To)
				}
			}
			if tt.idleTimeout == 0 && tt.maxIdle == 0 {
				// Nothing is ever closed, so no send dials while a connection waits.
				if n := sink.Connections(); n > concurrency {
					t.Errorf("%d senders opened %d connections, want at most %d", concurrency, n, concurrency)
				}
			}
			eventually(t, fmt.Sprintf("at most MaxIdle (%d) connections stay open", maxIdle), func() bool {
				return sink.OpenConnections() <= maxIdle
			})
		})
	}
}

// TestSMTPReconnects runs sends against a relay that hangs up on connections while they wait in
// the pool: each message must arrive exactly once, the MAIL FROM that reuses a connection noticing
// that it is gone before the relay sees any recipient.
func TestSMTPReconnects(t *testing.T) {
	tests := []struct {
		name string
		// before the first send, and hangUp between sends
		setUp, hangUp func(*deliverytest.SMTPSink)
	}{
		{
			name:   "idle connections dropped silently",
			hangUp: func(s *deliverytest.SMTPSink) { s.DropIdleConnections(0) },
		},
		{
			name:   "idle connections dropped with 421",
			hangUp: func(s *deliverytest.SMTPSink) { s.DropIdleConnections(421) },
		},
		{
			name:  "one message per connection",
			setUp: func(s *deliverytest.SMTPSink) { s.CloseAfter(1) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rcpt = "bob@example.net"
			sink := deliverytest.NewSMTPSink(t)
			if tt.setUp != nil {
				tt.setUp(sink)
			}
			p := newSMTP(t, sink, nil)

			ids := []string{"ntf-h1", "ntf-h2", "ntf-h3", "ntf-h4"}
			for i, id := range ids {
				if i > 0 && tt.hangUp != nil {
					tt.hangUp(sink)
				}
				sendAll(t, p, rcpt, id)
			}

			if diff := cmp.Diff(ids, notificationIDs(sink)); diff != "" {
				t.Errorf("received notification ids mismatch (-want +got):\n%s", diff)
			}
			if n := sink.Attempts(rcpt); n != len(ids) {
				t.Errorf("sink saw RCPT TO %d times, want %d: a dead connection got as far as a recipient", n, len(ids))
			}
			if n := sink.Connections(); n != len(ids) {
				t.Errorf("sink saw %d connections, want %d", n, len(ids))
			}
		})
	}
}

// TestSMTPReusesConnectionsWithoutExtraRoundTrips checks that a message on a reused connection
// costs its transaction's commands only: nothing (RSET, NOOP) before its MAIL FROM. Over a relay
// across a network each command is a round trip of every message.
func TestSMTPReusesConnectionsWithoutExtraRoundTrips(t *testing.T) {
	const rcpt = "bob@example.net"
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, nil)
	sendAll(t, p, rcpt, "ntf-r1", "ntf-r2", "ntf-r3")
	if n := sink.Connections(); n != 1 {
		t.Fatalf("sink saw %d connections, want 1: the test needs the messages on one connection", n)
	}
	if n := sink.IdleResets(); n != 0 {
		t.Errorf("sink saw %d RSETs outside a transaction, want 0: a reused connection needs no reset", n)
	}
}

// TestSMTPDiscardsConnectionAfterError checks that a failed transaction does not leak into the
// next message: the connection it ran on is closed, and the next message goes out on a new one
// with only its own recipient.
func TestSMTPDiscardsConnectionAfterError(t *testing.T) {
	tests := []struct {
		name          string
		code          int
		wantPermanent bool
	}{
		{name: "transient rejection", code: 451},
		{name: "permanent rejection", code: 550, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rcpt, bad = "bob@example.net", "carol@example.net"
			sink := deliverytest.NewSMTPSink(t)
			sink.AlwaysFail(bad, tt.code)
			p := newSMTP(t, sink, nil)

			sendAll(t, p, rcpt, "ntf-d1")
			_, err := p.Send(context.Background(), email("ntf-d2", bad))
			if err == nil || delivery.IsPermanent(err) != tt.wantPermanent {
				t.Fatalf("Send to a rejected recipient: err = %v, want one with IsPermanent %t", err, tt.wantPermanent)
			}
			sendAll(t, p, rcpt, "ntf-d3")

			type envelope struct {
				NotificationID string
				To             []string
			}
			var got []envelope
			for _, m := range sink.Messages() {
				got = append(got, envelope{m.NotificationID, m.To})
			}
			want := []envelope{{"ntf-d1", []string{rcpt}}, {"ntf-d3", []string{rcpt}}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("received messages mismatch (-want +got):\n%s", diff)
			}
			// The rejection ran on the first connection, which was then closed.
			if n := sink.Connections(); n != 2 {
				t.Errorf("sink saw %d connections, want 2", n)
			}
			eventually(t, "the failed connection is closed", func() bool { return sink.OpenConnections() == 1 })
		})
	}
}

// TestSMTPContextOnReusedConnection is TestSMTPContext on a connection that carried a message
// before: ctx still stops the conversation, and the connection is not reused afterwards.
func TestSMTPContextOnReusedConnection(t *testing.T) {
	tests := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			cause: context.DeadlineExceeded,
		},
		{
			name: "cancel",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				return ctx, cancel
			},
			cause: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const slow = "slow@example.net"
			sink := deliverytest.NewSMTPSink(t)
			p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.Timeout = 5 * time.Minute })
			sendAll(t, p, "bob@example.net", "ntf-x1")

			sink.Delay(slow, time.Minute)
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := p.Send(ctx, email("ntf-x2", slow))
			elapsed := time.Since(start)

			if !errors.Is(err, tt.cause) || delivery.IsPermanent(err) {
				t.Errorf("Send: err = %v, want a transient %v", err, tt.cause)
			}
			if elapsed > 10*time.Second {
				t.Errorf("Send took %s after ctx ended at 300ms", elapsed)
			}
			if n := sink.Connections(); n != 1 {
				t.Errorf("sink saw %d connections before the slow send ended, want 1 (a reused one)", n)
			}

			sendAll(t, p, "bob@example.net", "ntf-x3")
			if n := sink.Connections(); n != 2 {
				t.Errorf("sink saw %d connections, want 2: the interrupted one must not be reused", n)
			}
		})
	}
}

func TestSMTPIdleTimeout(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.IdleTimeout = 50 * time.Millisecond })

	sendAll(t, p, "bob@example.net", "ntf-i1")
	// The expired connection is hung up on, not left for the relay to reap.
	eventually(t, "the idle connection is closed", func() bool { return sink.OpenConnections() == 0 })
	sendAll(t, p, "bob@example.net", "ntf-i2")

	if n := sink.Connections(); n != 2 {
		t.Errorf("sink saw %d connections, want 2: a connection idle beyond IdleTimeout must not be reused", n)
	}
}

func TestSMTPClose(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, nil)
	sendAll(t, p, "bob@example.net", "ntf-q1")

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	eventually(t, "Close hangs up", func() bool { return sink.OpenConnections() == 0 })

	// Sending still works, and keeps nothing open.
	sendAll(t, p, "bob@example.net", "ntf-q2")
	eventually(t, "the connection of a send after Close is closed", func() bool { return sink.OpenConnections() == 0 })
	if n := sink.Count(); n != 2 {
		t.Errorf("sink accepted %d messages, want 2", n)
	}
}

// A relay that answered 250 to DATA has the message: whatever fails afterwards on that connection
// (here the relay hangs up at once, so the QUIT that ends a connection not kept for reuse finds
// nobody) does not make the send an error, which a retry would turn into a second mail.
func TestSMTPAcceptedIsSentWhateverFollows(t *testing.T) {
	const rcpt = "bob@example.net"
	sink := deliverytest.NewSMTPSink(t)
	sink.CloseAfter(1)
	p := newSMTP(t, sink, nil)
	// After Close no connection is kept: each ends with QUIT, right after its message.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ntf-a1", "ntf-a2"} {
		got, err := p.Send(context.Background(), email(id, rcpt))
		if err != nil {
			t.Fatalf("Send %s: %v; want it sent", id, err)
		}
		if want := id + "@example.com"; got != want {
			t.Errorf("Send %s returned id %q, want %q", id, got, want)
		}
	}
	if diff := cmp.Diff([]string{"ntf-a1", "ntf-a2"}, notificationIDs(sink)); diff != "" {
		t.Errorf("received notification ids (-want +got):\n%s", diff)
	}
	if n := sink.Attempts(rcpt); n != 2 {
		t.Errorf("sink saw RCPT TO %d times, want 2", n)
	}
}

// BenchmarkSMTPSend measures a whole Send against the loopback sink, one sender at a time and
// about eight at once (a worker's default concurrency per channel). The sink's own work (parsing
// and recording each message) is in the figures too.
func BenchmarkSMTPSend(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		sink := deliverytest.NewSMTPSink(b)
		p := newSMTP(b, sink, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Send(context.Background(), email("ntf-bench", "bob@example.net")); err != nil {
				b.Fatalf("Send: %v", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		sink := deliverytest.NewSMTPSink(b)
		p := newSMTP(b, sink, nil)
		b.ReportAllocs()
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Send(context.Background(), email("ntf-bench", "bob@example.net")); err != nil {
					b.Errorf("Send: %v", err)
					return
				}
			}
		})
	})
}

// TestSMTPSendsAttachments: a message with attachments arrives as multipart/mixed around its
// body (the text, or the text and HTML alternative), each file a base64 part with the name and
// Content-Type it was sent with, whose decoded bytes are exactly the file's.
func TestSMTPSendsAttachments(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	p := newSMTP(t, sink, nil)
	pdf := append([]byte("%PDF-1.7\r\n\x00\xff\xfe binary\n"), bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n'}, 500)...)
	csv := []byte("a,b\r\n1,2\r\n")
	for _, withHTML := range []bool{false, true} {
		id := fmt.Sprintf("ntf-att-%t", withHTML)
		to := id + "@example.net"
		m := email(id, to)
		if withHTML {
			m.HTML = "<p>See the <b>invoice</b>.</p>"
		}
		m.Attachments = []delivery.Attachment{
			{Filename: "invoice 2026.pdf", ContentType: "application/pdf", Data: pdf},
			{Filename: "rows.csv", ContentType: "text/csv", Data: csv},
		}
		if _, err := p.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := sink.Received(to)
		if len(got) != 1 {
			t.Fatalf("sink received %d messages, want 1", len(got))
		}
		msg := got[0]
		if mt, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type")); mt != "multipart/mixed" {
			t.Fatalf("Content-Type = %q, want multipart/mixed", msg.Header.Get("Content-Type"))
		}
		type part struct{ MediaType, Encoding, Disposition, Body string }
		want := []part{{MediaType: "text/plain", Encoding: "quoted-printable", Body: m.Body}}
		if withHTML {
			want = append(want, part{MediaType: "text/html", Encoding: "quoted-printable", Body: m.HTML})
		}
		want = append(want,
			part{"application/pdf", "base64", `attachment; filename="invoice 2026.pdf"`, string(pdf)},
			part{"text/csv", "base64", `attachment; filename="rows.csv"`, string(csv)})
		var parts []part
		for _, p := range msg.Parts {
			got := part{MediaType: p.MediaType, Encoding: p.Header.Get("Content-Transfer-Encoding"), Body: p.Body}
			if d := p.Header.Get("Content-Disposition"); d != "" {
				got.Disposition, got.Body = d, string(p.Data)
			}
			parts = append(parts, got)
		}
		if diff := cmp.Diff(want, parts); diff != "" {
			t.Errorf("with HTML %t: parts (-want +got):\n%s", withHTML, diff)
		}
	}
}
