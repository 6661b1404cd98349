package bench

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
)

// The sinks are driven by Herald's own providers, so they understand what Herald really sends.
func TestSinksCountWhatHeraldsProvidersSend(t *testing.T) {
	type got struct {
		i  int
		id string
	}
	var (
		mu   sync.Mutex
		seen []got
	)
	sk, err := startSinks(func(i int, id string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, got{i, id})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()

	host, port := sk.smtpAddr()
	smtp, err := delivery.NewSMTP(delivery.SMTPConfig{Host: host, Port: port, TLS: "none", From: "Herald Bench <bench@herald.test>", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sms, err := delivery.NewHTTPSMS(delivery.SMSConfig{URL: sk.smsURL(), AccountSID: smsAccountSID, AuthToken: smsAuthToken, From: smsFrom, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	emailID, smsID := uuid.NewString(), uuid.NewString()
	if _, err := smtp.Send(ctx, delivery.Message{NotificationID: emailID, Attempt: 1, Channel: herald.ChannelEmail,
		Recipient: emailRecipient(7), Subject: "Bench 7", Body: "Hello Ada, this is notification 7 of the bench."}); err != nil {
		t.Fatalf("smtp send: %v", err)
	}
	sid, err := sms.Send(ctx, delivery.Message{NotificationID: smsID, Attempt: 1, Channel: herald.ChannelSMS,
		Recipient: smsRecipient(8), Body: "Hello Ada, this is notification 8 of the bench."})
	if err != nil {
		t.Fatalf("sms send: %v", err)
	}
	if !strings.HasPrefix(sid, "SM") {
		t.Errorf("sms sid %q, want a Twilio-shaped one", sid)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []got{{7, emailID}, {8, smsID}}
	if len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("arrivals %+v, want %+v", seen, want)
	}
}

func TestSMSSinkRefusesWrongCredentials(t *testing.T) {
	sk, err := startSinks(func(int, string) { t.Error("a refused request counted as a delivery") })
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()
	req, _ := http.NewRequest(http.MethodPost, sk.smsURL()+"/2010-04-01/Accounts/"+smsAccountSID+"/Messages.json",
		strings.NewReader("To=%2B1999000000001&From=%2B15005550006&Body=hi"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(smsAccountSID, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || sk.refused.Load() != 1 {
		t.Errorf("status %d, refused %d; want 401 and 1", resp.StatusCode, sk.refused.Load())
	}
}
