package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/redact"
)

const smsFrom = "+15550000001"

// newHTTPSMS returns a provider pointed at sink with its credentials, with cfg adjusted by adjust.
func newHTTPSMS(t *testing.T, sink *deliverytest.SMSSink, adjust func(*delivery.SMSConfig)) *delivery.HTTPSMS {
	t.Helper()
	cfg := delivery.SMSConfig{
		URL:        sink.URL(),
		AccountSID: sink.AccountSID,
		AuthToken:  sink.AuthToken,
		From:       smsFrom,
		Timeout:    10 * time.Second,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	p, err := delivery.NewHTTPSMS(cfg)
	if err != nil {
		t.Fatalf("NewHTTPSMS(%+v): %v", cfg, err)
	}
	return p
}

func sms(id, to string) delivery.Message {
	return delivery.Message{
		NotificationID: id,
		Attempt:        1,
		Channel:        herald.ChannelSMS,
		Recipient:      to,
		Body:           "Your code is 1234 — Herald",
	}
}

func TestHTTPSMSSend(t *testing.T) {
	const to = "+15550100001"
	sink := deliverytest.NewSMSSink(t)
	p := newHTTPSMS(t, sink, nil)

	sid, err := p.Send(context.Background(), sms("ntf-1", to))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !strings.HasPrefix(sid, "SM") {
		t.Errorf("Send sid = %q, want one starting with SM", sid)
	}

	want := []deliverytest.SMSMessage{{
		SID:              sid,
		AccountSID:       deliverytest.SMSAccountSID,
		To:               to,
		From:             smsFrom,
		Body:             "Your code is 1234 — Herald",
		IdempotencyToken: "ntf-1",
	}}
	if diff := cmp.Diff(want, sink.Messages()); diff != "" {
		t.Errorf("sink messages mismatch (-want +got):\n%s", diff)
	}
}

// With a status callback configured every request names it, with the message's notification
// in the query, so the gateway posts the message's status reports there and each names its
// notification; without one the field is absent and the gateway posts none.
func TestHTTPSMSStatusCallback(t *testing.T) {
	const callback = "https://herald.example.com/api/v1/receipts/sms"
	const id = "0193a5c4-7b1e-7f00-8000-0000000000cb"
	tests := []struct {
		name     string
		callback string
		id       string
		to       string
		want     string
	}{
		{name: "set", callback: callback, id: id, to: "+15550100011", want: callback + "?notification=" + id},
		{name: "unset", callback: "", id: id, to: "+15550100012", want: ""},
		// Whatever the id holds, it stays one query value.
		{name: "id escaped", callback: callback, id: "a&b=c #d", to: "+15550100013",
			want: callback + "?notification=a%26b%3Dc+%23d"},
		{name: "callback with a query", callback: callback + "?tenant=x", id: id, to: "+15550100014",
			want: callback + "?tenant=x&notification=" + id},
		// Twilio reads its connection overrides from the fragment: the query goes before it.
		{name: "callback with a fragment", callback: callback + "#rc=3&rp=all", id: id, to: "+15550100015",
			want: callback + "?notification=" + id + "#rc=3&rp=all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMSSink(t)
			p := newHTTPSMS(t, sink, func(c *delivery.SMSConfig) { c.StatusCallback = tt.callback })
			if _, err := p.Send(context.Background(), sms(tt.id, tt.to)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := sink.Received(tt.to)
			if len(got) != 1 {
				t.Fatalf("received %d messages, want 1", len(got))
			}
			if got[0].StatusCallback != tt.want {
				t.Errorf("StatusCallback = %q, want %q", got[0].StatusCallback, tt.want)
			}
			if tt.want == "" {
				return
			}
			u, err := url.Parse(got[0].StatusCallback)
			if err != nil {
				t.Fatal(err)
			}
			if named := u.Query().Get(delivery.CallbackNotificationParam); named != tt.id {
				t.Errorf("the callback names notification %q, want %q", named, tt.id)
			}
		})
	}
}

func TestHTTPSMSBaseURLWithTrailingSlash(t *testing.T) {
	const to = "+15550100002"
	sink := deliverytest.NewSMSSink(t)
	p := newHTTPSMS(t, sink, func(c *delivery.SMSConfig) { c.URL += "/" })

	if _, err := p.Send(context.Background(), sms("ntf-2", to)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := len(sink.Received(to)); got != 1 {
		t.Errorf("received %d messages, want 1", got)
	}
}

func TestHTTPSMSFailures(t *testing.T) {
	tests := []struct {
		name          string
		program       func(s *deliverytest.SMSSink, to string)
		adjust        func(*delivery.SMSConfig)
		wantPermanent bool
		// wantInError are substrings the error must carry.
		wantInError []string
	}{
		{
			name:        "503 is transient",
			program:     func(s *deliverytest.SMSSink, to string) { s.FailTimes(to, 1, 503) },
			wantInError: []string{"503 Service Unavailable"},
		},
		{
			name:        "500 is transient",
			program:     func(s *deliverytest.SMSSink, to string) { s.FailTimes(to, 1, 500) },
			wantInError: []string{"500 Internal Server Error"},
		},
		{
			name:        "429 is transient",
			program:     func(s *deliverytest.SMSSink, to string) { s.FailTimes(to, 1, 429) },
			wantInError: []string{"429 Too Many Requests"},
		},
		{
			name:        "408 is transient",
			program:     func(s *deliverytest.SMSSink, to string) { s.FailTimes(to, 1, 408) },
			wantInError: []string{"408 Request Timeout"},
		},
		{
			name:          "400 is permanent and carries the gateway's message",
			program:       func(s *deliverytest.SMSSink, to string) { s.AlwaysFail(to, 400) },
			wantPermanent: true,
			wantInError:   []string{"400 Bad Request", "The 'To' number is not a valid phone number.", "21211"},
		},
		{
			name:          "403 is permanent",
			program:       func(s *deliverytest.SMSSink, to string) { s.AlwaysFail(to, 403) },
			wantPermanent: true,
			wantInError:   []string{"403 Forbidden"},
		},
		{
			name:          "wrong credentials are permanent",
			adjust:        func(c *delivery.SMSConfig) { c.AuthToken = "wrong" },
			wantPermanent: true,
			wantInError:   []string{"401 Unauthorized", "Authenticate"},
		},
		{
			name:          "unknown account is permanent",
			adjust:        func(c *delivery.SMSConfig) { c.AccountSID = "AC-someone-else" },
			wantPermanent: true,
			wantInError:   []string{"401 Unauthorized"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const to = "+15550100003"
			sink := deliverytest.NewSMSSink(t)
			if tt.program != nil {
				tt.program(sink, to)
			}
			p := newHTTPSMS(t, sink, tt.adjust)

			_, err := p.Send(context.Background(), sms("ntf-3", to))
			if err == nil {
				t.Fatal("Send: got nil error")
			}
			if got := delivery.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%v) = %t, want %t", err, got, tt.wantPermanent)
			}
			for _, want := range tt.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if got := sink.Attempts(to); got != 1 {
				t.Errorf("Attempts = %d, want 1", got)
			}
			if got := sink.Count(); got != 0 {
				t.Errorf("sink accepted %d messages, want 0", got)
			}
		})
	}
}

// A 2xx answer means the gateway took the message. When Herald cannot read it, the message is
// still sent (its sid unknown), never an error that a retry would turn into a second SMS.
func TestHTTPSMSAcceptedWithoutReadableAnswer(t *testing.T) {
	tests := []struct {
		name   string
		answer deliverytest.AcceptedAnswer
		wantID string
	}{
		{name: "HTML page", answer: deliverytest.AcceptedAnswer{Status: 200, ContentType: "text/html", Body: "<html><body>Message queued</body></html>"}},
		{name: "empty body", answer: deliverytest.AcceptedAnswer{Status: 201}},
		{name: "204 No Content", answer: deliverytest.AcceptedAnswer{Status: 204}},
		{name: "JSON without a sid", answer: deliverytest.AcceptedAnswer{Status: 201, ContentType: "application/json", Body: `{"status":"queued"}`}},
		{name: "JSON with an empty sid", answer: deliverytest.AcceptedAnswer{Status: 201, ContentType: "application/json", Body: `{"sid":""}`}},
		{name: "JSON cut short", answer: deliverytest.AcceptedAnswer{Status: 201, ContentType: "application/json", Body: `{"sid":"SM0123`}},
		{name: "connection lost mid-answer", answer: deliverytest.AcceptedAnswer{Status: 201, ContentType: "application/json", Body: `{"sid":"SM0123`, Cut: true}},
		{name: "sid beside unexpected fields", answer: deliverytest.AcceptedAnswer{Status: 200, ContentType: "application/json", Body: `{"sid":"SMabc","extra":[1,2]}`}, wantID: "SMabc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const to = "+15550100009"
			sink := deliverytest.NewSMSSink(t)
			sink.AnswerAccepted(to, tt.answer)
			p := newHTTPSMS(t, sink, nil)

			id, err := p.Send(context.Background(), sms("ntf-9", to))
			if err != nil {
				t.Fatalf("Send: %v; want the message counted as sent", err)
			}
			if id != tt.wantID {
				t.Errorf("Send id = %q, want %q", id, tt.wantID)
			}
			if got := len(sink.Received(to)); got != 1 || sink.Attempts(to) != 1 {
				t.Errorf("sink received %d messages in %d requests, want 1 in 1", got, sink.Attempts(to))
			}
		})
	}
}

func TestHTTPSMSRetryAfterTransientFailure(t *testing.T) {
	const to = "+15550100004"
	sink := deliverytest.NewSMSSink(t)
	sink.FailTimes(to, 2, 503)
	p := newHTTPSMS(t, sink, nil)

	for attempt := 1; attempt <= 2; attempt++ {
		if _, err := p.Send(context.Background(), sms("ntf-4", to)); err == nil || delivery.IsPermanent(err) {
			t.Fatalf("attempt %d: err = %v, want a transient error", attempt, err)
		}
	}
	sid, err := p.Send(context.Background(), sms("ntf-4", to))
	if err != nil {
		t.Fatalf("attempt 3: %v", err)
	}

	if got := sink.Attempts(to); got != 3 {
		t.Errorf("Attempts = %d, want 3", got)
	}
	want := []deliverytest.SMSMessage{{SID: sid, To: to, IdempotencyToken: "ntf-4"}}
	opts := cmpopts.IgnoreFields(deliverytest.SMSMessage{}, "AccountSID", "From", "Body")
	if diff := cmp.Diff(want, sink.Received(to), opts); diff != "" {
		t.Errorf("received mismatch (-want +got):\n%s", diff)
	}
}

func TestHTTPSMSTimeout(t *testing.T) {
	const to = "+15550100005"
	sink := deliverytest.NewSMSSink(t)
	sink.Delay(to, time.Minute)
	p := newHTTPSMS(t, sink, func(c *delivery.SMSConfig) { c.Timeout = 300 * time.Millisecond })

	start := time.Now()
	_, err := p.Send(context.Background(), sms("ntf-5", to))
	elapsed := time.Since(start)

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send to a stalling gateway: err = %v, want a deadline error", err)
	}
	if delivery.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Send took %s with a 300ms timeout", elapsed)
	}
}

func TestHTTPSMSContextCancelled(t *testing.T) {
	const to = "+15550100006"
	sink := deliverytest.NewSMSSink(t)
	sink.Delay(to, time.Minute)
	p := newHTTPSMS(t, sink, func(c *delivery.SMSConfig) { c.Timeout = 5 * time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)

	_, err := p.Send(ctx, sms("ntf-6", to))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send: err = %v, want context.Canceled", err)
	}
	if delivery.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
}

func TestHTTPSMSConnectionRefused(t *testing.T) {
	p, err := delivery.NewHTTPSMS(delivery.SMSConfig{
		URL:        "http://" + closedAddr(t),
		AccountSID: deliverytest.SMSAccountSID,
		AuthToken:  deliverytest.SMSAuthToken,
		From:       smsFrom,
		Timeout:    5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}

	_, err = p.Send(context.Background(), sms("ntf-7", "+15550100007"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Send to a closed port: err = %v, want connection refused", err)
	}
	if delivery.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
}

func TestHTTPSMSPermanentWithoutSending(t *testing.T) {
	tests := []struct {
		name string
		m    delivery.Message
	}{
		{name: "empty recipient", m: sms("ntf-8", " ")},
		{name: "email message", m: delivery.Message{NotificationID: "ntf-8", Channel: herald.ChannelEmail, Recipient: "+15550100008", Body: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMSSink(t)
			p := newHTTPSMS(t, sink, nil)

			_, err := p.Send(context.Background(), tt.m)
			if !delivery.IsPermanent(err) {
				t.Errorf("Send(%+v): err = %v, want a permanent error", tt.m, err)
			}
			if got := sink.Attempts(tt.m.Recipient); got != 0 {
				t.Errorf("Attempts = %d, want 0", got)
			}
		})
	}
}

func TestNewHTTPSMS(t *testing.T) {
	valid := delivery.SMSConfig{URL: "https://api.twilio.com", AccountSID: "AC1", AuthToken: "token", From: smsFrom}
	tests := []struct {
		name    string
		adjust  func(*delivery.SMSConfig)
		wantErr string // "" for a valid config
	}{
		{name: "minimal"},
		{name: "http with a port and path", adjust: func(c *delivery.SMSConfig) { c.URL = "http://127.0.0.1:8080/gateway/" }},
		{name: "missing url", adjust: func(c *delivery.SMSConfig) { c.URL = "" }, wantErr: "url is required"},
		{name: "unparsable url", adjust: func(c *delivery.SMSConfig) { c.URL = "http://[::1" }, wantErr: "does not parse"},
		{name: "wrong scheme", adjust: func(c *delivery.SMSConfig) { c.URL = "ftp://api.twilio.com" }, wantErr: "scheme must be http or https"},
		{name: "no scheme", adjust: func(c *delivery.SMSConfig) { c.URL = "api.twilio.com" }, wantErr: "scheme must be http or https"},
		{name: "no host", adjust: func(c *delivery.SMSConfig) { c.URL = "https://" }, wantErr: "has no host"},
		{name: "missing account sid", adjust: func(c *delivery.SMSConfig) { c.AccountSID = "" }, wantErr: "account sid is required"},
		{name: "missing auth token", adjust: func(c *delivery.SMSConfig) { c.AuthToken = "" }, wantErr: "auth token is required"},
		{name: "missing from", adjust: func(c *delivery.SMSConfig) { c.From = "" }, wantErr: "from is required"},
		{name: "status callback", adjust: func(c *delivery.SMSConfig) { c.StatusCallback = "https://herald.example.com/api/v1/receipts/sms" }},
		{name: "status callback not http", adjust: func(c *delivery.SMSConfig) { c.StatusCallback = "ftp://herald.example.com/x" }, wantErr: "status callback \"ftp://herald.example.com/x\": scheme must be http or https"},
		{name: "status callback without host", adjust: func(c *delivery.SMSConfig) { c.StatusCallback = "https:///x" }, wantErr: "has no host"},
		{name: "negative timeout", adjust: func(c *delivery.SMSConfig) { c.Timeout = -time.Second }, wantErr: "timeout -1s is negative"},
		{
			name:    "every problem at once",
			adjust:  func(c *delivery.SMSConfig) { *c = delivery.SMSConfig{} },
			wantErr: "sms config: url is required; account sid is required; auth token is required; from is required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			if tt.adjust != nil {
				tt.adjust(&cfg)
			}
			p, err := delivery.NewHTTPSMS(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewHTTPSMS(%+v): %v", cfg, err)
				}
				if p.Name() != "http-sms" {
					t.Errorf("Name() = %q, want %q", p.Name(), "http-sms")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewHTTPSMS(%+v): err = %v, want one containing %q", cfg, err, tt.wantErr)
			}
		})
	}
}

// A gateway may echo the credentials it refuses; the error Herald records must not.
func TestMaskedProviderHidesEchoedCredentials(t *testing.T) {
	const token = "Pl4nted-auth-token"
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid, tok, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"code": 20003, "message": "Authenticate: %s/%s refused"}`, sid, tok)
	}))
	defer gateway.Close()
	p, err := delivery.NewHTTPSMS(delivery.SMSConfig{URL: gateway.URL, AccountSID: "AC0123", AuthToken: token, From: smsFrom, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = delivery.Masked(p, redact.New(token)).Send(context.Background(), sms("ntf-1", "+15550100001"))
	if err == nil {
		t.Fatal("Send succeeded against a gateway that refuses")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error shows the auth token: %v", err)
	}
	if !strings.Contains(err.Error(), "AC0123/xxxxx refused") {
		t.Errorf("error lost the gateway's answer: %v", err)
	}
	if !delivery.IsPermanent(err) {
		t.Errorf("a 401 is no longer permanent once masked: %v", err)
	}
	if got := delivery.Masked(p, nil).Name(); got != p.Name() {
		t.Errorf("Name() = %q, want %q", got, p.Name())
	}
}
