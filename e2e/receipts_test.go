package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/receipts"
)

// TestSMSDeliveryReceipt follows an SMS past sent: Herald sends it asking the gateway for status
// reports at its public URL, and the test, acting as the gateway, posts a signed "delivered" for
// the message id Herald recorded. The public URL has a path prefix a proxy would strip, so the
// signature is over an address the process never sees itself, as in production.
func TestSMSDeliveryReceipt(t *testing.T) {
	const public = "https://herald.e2e.test/gateway"
	d := newDeps(t)
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}, Env: map[string]string{"HERALD_PUBLIC_URL": public}})

	req := smsCase(1).req
	id := send(t, c.API, req)
	sent := waitStatus(t, c.API, id, "sent", deliveryTimeout)
	msgs := d.SMS.Received(req.Recipient)
	if len(msgs) != 1 || sent.ProviderMessageID == "" || msgs[0].SID != sent.ProviderMessageID {
		t.Fatalf("gateway has %+v, Herald recorded message id %q: want one message with that id", msgs, sent.ProviderMessageID)
	}
	// Each SMS names its notification in the callback's query, under the gateway's signature.
	if want := public + receipts.StatusPath + "?notification=" + id; msgs[0].StatusCallback != want {
		t.Fatalf("the SMS asked for status reports at %q, want %q", msgs[0].StatusCallback, want)
	}
	// The proxy strips the public URL's prefix and passes the query on.
	callbackURL := c.API + receipts.StatusPath + "?notification=" + url.QueryEscape(id)

	form := url.Values{"MessageSid": {sent.ProviderMessageID}, "SmsSid": {sent.ProviderMessageID}, "MessageStatus": {"delivered"},
		"SmsStatus": {"delivered"}, "AccountSid": {d.SMS.AccountSID}, "To": {req.Recipient}, "From": {smsFrom}, "ApiVersion": {"2010-04-01"}}
	signedURL := msgs[0].StatusCallback

	// A forgery first: refused, and the notification stays sent.
	if status, body := postCallback(t, callbackURL, form, receipts.Sign("not-the-token", signedURL, form)); status != http.StatusForbidden {
		t.Fatalf("forged callback: %d %s, want 403", status, body)
	}
	// The gateway's own: signed with the account's token over the URL it was given.
	if status, body := postCallback(t, callbackURL, form, receipts.Sign(d.SMS.AuthToken, signedURL, form)); status != http.StatusNoContent || body != "" {
		t.Fatalf("delivered callback: %d %q, want 204 and no body", status, body)
	}

	var n notificationJSON
	heraldtest.Eventually(t, 15*time.Second, "notification "+id+" to be delivered", func() (bool, error) {
		n = notificationJSON{}
		if err := tryGetJSON(c.API+"/api/v1/notifications/"+id+"/status", &n); err != nil {
			return false, err
		}
		return n.Status == "delivered", fmt.Errorf("status %s", n.Status)
	})
	history, evs := story(t, c.API, id, 4)
	// One story: the receipt carries the notification's correlation id like every other event.
	checkStory(t, id, history, evs, "")
	last := history[len(history)-1]
	if len(history) != 4 || last.Event != "NotificationDelivered" || last.Status != "delivered" ||
		last.Provider != "http-sms" || last.ProviderMessageID != sent.ProviderMessageID {
		t.Errorf("history %+v: want it to end with NotificationDelivered by http-sms for %s, status delivered", history, sent.ProviderMessageID)
	}
	if e := evs[len(evs)-1]; e.Type != "NotificationDelivered" || e.Version != 4 {
		t.Errorf("last event %s v%d, want NotificationDelivered v4", e.Type, e.Version)
	}

	// The gateway retries a callback it did not see answered: nothing more is recorded.
	if status, body := postCallback(t, callbackURL, form, receipts.Sign(d.SMS.AuthToken, signedURL, form)); status != http.StatusNoContent {
		t.Errorf("repeated callback: %d %s, want 204", status, body)
	}
	heraldtest.Eventually(t, 15*time.Second, "the callbacks metric", func() (bool, error) {
		recorded := metric(t, c.API+"/metrics", "herald_sms_callbacks_total", map[string]string{"callback": "status", "outcome": "recorded"})
		duplicate := metric(t, c.API+"/metrics", "herald_sms_callbacks_total", map[string]string{"callback": "status", "outcome": "duplicate"})
		forged := metric(t, c.API+"/metrics", "herald_sms_callbacks_total", map[string]string{"callback": "status", "outcome": "forged"})
		return recorded == 1 && duplicate == 1 && forged == 1, fmt.Errorf("recorded %v, duplicate %v, forged %v; want 1 each", recorded, duplicate, forged)
	})
	var after eventsJSON
	getJSON(t, c.API+"/api/v1/notifications/"+id+"/events", &after)
	if len(after.Events) != 4 {
		t.Errorf("%d events after the repeated callback, want 4", len(after.Events))
	}
}

// postCallback posts form to u as the gateway does: no API key, its signature in the header.
func postCallback(t *testing.T, u string, form url.Values, sig string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(receipts.SignatureHeader, sig)
	req.Header.Set("Authorization", "-")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSMSOptOut: a recipient's STOP, posted signed by the gateway to the inbound route, puts the
// number on the suppression list; the next SMS to it is accepted, fails as suppressed and never
// reaches the gateway; the recipient's START lets the one after it through.
func TestSMSOptOut(t *testing.T) {
	const public = "https://herald.e2e.test"
	d := newDeps(t)
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}, Env: map[string]string{"HERALD_PUBLIC_URL": public}})
	req := smsCase(7).req
	inbound := func(body string) {
		t.Helper()
		form := url.Values{"MessageSid": {"SM" + strings.Repeat("7", 32)}, "AccountSid": {d.SMS.AccountSID},
			"From": {req.Recipient}, "To": {smsFrom}, "Body": {body}}
		status, answer := postCallback(t, c.API+receipts.InboundPath, form, receipts.Sign(d.SMS.AuthToken, public+receipts.InboundPath, form))
		if status != http.StatusOK || !strings.Contains(answer, "<Response>") {
			t.Fatalf("inbound %q: %d %s, want 200 with an empty TwiML reply", body, status, answer)
		}
	}

	inbound(" Stop ")
	stopped := send(t, c.API, req)
	failed := waitStatus(t, c.API, stopped, "failed", deliveryTimeout)
	if !strings.HasPrefix(failed.LastError, "recipient suppressed (opt_out") {
		t.Errorf("last error = %q, want the opt-out named", failed.LastError)
	}
	out := mustRunCLI(t, c, "suppressions", "list", "--channel", "sms")
	if !strings.Contains(out, req.Recipient) || !strings.Contains(out, "opt_out") {
		t.Errorf("herald suppressions list --channel sms:\n%s\nwant %s, opt_out", out, req.Recipient)
	}

	inbound("START")
	resumed := send(t, c.API, req)
	waitStatus(t, c.API, resumed, "sent", deliveryTimeout)
	msgs := d.SMS.Received(req.Recipient)
	if len(msgs) != 1 {
		t.Errorf("the gateway received %d messages for %s, want 1: the one sent while opted out must not reach it", len(msgs), req.Recipient)
	}
}
