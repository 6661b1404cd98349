package deliverytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/herald-notify/herald/delivery/deliverytest"
)

// rawMail is a message as another mailer might send it: base64 body, encoded subject, CRLF.
const rawMail = "From: Alice <alice@example.com>\r\n" +
	"To: Bob <Bob@Example.net>\r\n" +
	"Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n" +
	"Message-ID: <abc-1@example.com>\r\n" +
	"X-Herald-Notification-Id: abc-1\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aGVsbG8NCndvcmxk\r\n" // "hello\r\nworld"

// sendMail delivers raw over plain SMTP: go-smtp's own SendMail insists on STARTTLS, which the
// sink does not offer.
func sendMail(addr, from string, to []string, raw string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func TestSMTPSinkParsesAndWaits(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	sent := make(chan error, 1)
	go func() {
		sent <- sendMail(sink.Addr(), "alice@example.com", []string{"Bob@Example.net"}, rawMail)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Recipients match whatever the case and form.
	got, err := sink.Wait(ctx, "Bob <bob@example.net>", 1)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("SendMail: %v", err)
	}

	want := []deliverytest.SMTPMessage{{
		From:           "alice@example.com",
		To:             []string{"Bob@Example.net"},
		MessageID:      "abc-1@example.com",
		NotificationID: "abc-1",
		Subject:        "Grüße",
		Body:           "hello\nworld",
	}}
	opts := cmpopts.IgnoreFields(deliverytest.SMTPMessage{}, "Data", "Header")
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("received mismatch (-want +got):\n%s", diff)
	}
	if sink.Count() != 1 || sink.Attempts("BOB@example.net") != 1 {
		t.Errorf("Count = %d, Attempts = %d; want 1 and 1", sink.Count(), sink.Attempts("BOB@example.net"))
	}
}

func TestSMTPSinkWaitGivesUp(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	if _, err := sink.Wait(ctx, "nobody@example.net", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with nothing sent: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestSMTPSinkMessagesAreCopies(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	if err := sendMail(sink.Addr(), "alice@example.com", []string{"bob@example.net"}, rawMail); err != nil {
		t.Fatalf("SendMail: %v", err)
	}

	first := sink.Messages()
	first[0].To[0] = "changed"
	first[0].Header["Subject"][0] = "changed"
	second := sink.Messages()
	if second[0].To[0] != "bob@example.net" || second[0].Header.Get("Subject") == "changed" {
		t.Errorf("changing a returned message changed the sink's: To %q, Subject %q", second[0].To, second[0].Header.Get("Subject"))
	}
}

func TestSMTPSinkFailTimes(t *testing.T) {
	const rcpt = "carol@example.net"
	sink := deliverytest.NewSMTPSink(t)
	sink.FailTimes(rcpt, 2, 451)

	var codes []int
	for range 3 {
		err := sendMail(sink.Addr(), "alice@example.com", []string{rcpt}, rawMail)
		var smtpErr *smtp.SMTPError
		switch {
		case err == nil:
			codes = append(codes, 250)
		case errors.As(err, &smtpErr):
			codes = append(codes, smtpErr.Code)
		default:
			t.Fatalf("SendMail: %v", err)
		}
	}
	if diff := cmp.Diff([]int{451, 451, 250}, codes); diff != "" {
		t.Errorf("replies mismatch (-want +got):\n%s", diff)
	}
	if sink.Attempts(rcpt) != 3 || sink.Count() != 1 {
		t.Errorf("Attempts = %d, Count = %d; want 3 and 1", sink.Attempts(rcpt), sink.Count())
	}
}

// postSMS posts form to the sink's Messages endpoint for account with the given credentials and
// returns the status and the decoded JSON answer.
func postSMS(t *testing.T, sink *deliverytest.SMSSink, account, user, password string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sink.URL()+"/2010-04-01/Accounts/"+account+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("status %s: body is not JSON: %v", resp.Status, err)
	}
	return resp.StatusCode, body
}

func TestSMSSinkAnswers(t *testing.T) {
	valid := url.Values{"To": {"+15550100001"}, "From": {"+15550000001"}, "Body": {"hi"}}
	tests := []struct {
		name       string
		account    string
		user, pass string
		form       url.Values
		wantStatus int
		wantCode   float64 // Twilio error code; 0 for success
	}{
		{name: "accepted", account: deliverytest.SMSAccountSID, user: deliverytest.SMSAccountSID, pass: deliverytest.SMSAuthToken, form: valid, wantStatus: 201},
		{name: "wrong token", account: deliverytest.SMSAccountSID, user: deliverytest.SMSAccountSID, pass: "nope", form: valid, wantStatus: 401, wantCode: 20003},
		{name: "another account's path", account: "AC-other", user: deliverytest.SMSAccountSID, pass: deliverytest.SMSAuthToken, form: valid, wantStatus: 404, wantCode: 20404},
		{
			name:    "missing body",
			account: deliverytest.SMSAccountSID, user: deliverytest.SMSAccountSID, pass: deliverytest.SMSAuthToken,
			form:       url.Values{"To": {"+15550100001"}, "From": {"+15550000001"}},
			wantStatus: 400, wantCode: 21602,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := deliverytest.NewSMSSink(t)
			status, body := postSMS(t, sink, tt.account, tt.user, tt.pass, tt.form)

			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %v)", status, tt.wantStatus, body)
			}
			wantCount := 0
			if tt.wantCode == 0 {
				wantCount = 1
				if sid, _ := body["sid"].(string); !strings.HasPrefix(sid, "SM") || len(sid) != 34 {
					t.Errorf("sid = %q, want SM and 32 hex digits", sid)
				}
			} else if body["code"] != tt.wantCode {
				t.Errorf("code = %v, want %v", body["code"], tt.wantCode)
			}
			if sink.Count() != wantCount || sink.Attempts("+15550100001") != 1 {
				t.Errorf("Count = %d, Attempts = %d; want %d and 1", sink.Count(), sink.Attempts("+15550100001"), wantCount)
			}
		})
	}
}

func TestSMSSinkWait(t *testing.T) {
	sink := deliverytest.NewSMSSink(t)
	form := url.Values{"To": {"+15550100002"}, "From": {"+15550000001"}, "Body": {"hi"}}
	go func() {
		for range 2 {
			// Failures surface as Wait timing out below.
			req, _ := http.NewRequest(http.MethodPost, sink.URL()+"/2010-04-01/Accounts/"+sink.AccountSID+"/Messages.json", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(sink.AccountSID, sink.AuthToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := sink.Wait(ctx, "+15550100002", 2)
	if err != nil {
		t.Fatalf("Wait: %v (got %d messages)", err, len(got))
	}
	if len(got) != 2 || got[0].SID == got[1].SID {
		t.Errorf("Wait returned %+v, want 2 messages with distinct sids", got)
	}
}

// TestSMTPSinkParsesParts: a multipart message's leaf parts are kept in order, nested parts
// flattened, each with its header as transmitted and its body decoded.
func TestSMTPSinkParsesParts(t *testing.T) {
	raw := "From: alice@example.com\r\n" +
		"To: bob@example.net\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=outer\r\n" +
		"\r\n" +
		"--outer\r\n" +
		"Content-Type: multipart/alternative; boundary=inner\r\n" +
		"\r\n" +
		"--inner\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" +
		"R3LDvMOfZQ0KQm9i\r\n" + // "Grüße\r\nBob"
		"--inner\r\n" +
		"Content-Type: text/html; charset=UTF-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"<p style=3D\"x\">Gr=C3=BC=C3=9Fe</p>\r\n" +
		"--inner--\r\n" +
		"--outer\r\n" +
		"Content-Type: text/csv\r\n" +
		"\r\n" +
		"a,b\r\n" +
		"--outer--\r\n"
	sink := deliverytest.NewSMTPSink(t)
	if err := sendMail(sink.Addr(), "alice@example.com", []string{"bob@example.net"}, raw); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	type part struct{ MediaType, Charset, Encoding, Body string }
	var got []part
	for _, p := range sink.Messages()[0].Parts {
		got = append(got, part{p.MediaType, p.Charset, p.Header.Get("Content-Transfer-Encoding"), p.Body})
	}
	want := []part{
		{"text/plain", "UTF-8", "base64", "Grüße\nBob"},
		{"text/html", "UTF-8", "quoted-printable", `<p style="x">Grüße</p>`},
		{"text/csv", "", "", "a,b"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}
