package deliverytest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/heraldtest"
)

// smtpReply sends rawMail to rcpt and returns the reply code: 250 on success.
func smtpReply(t *testing.T, sink *deliverytest.SMTPSink, rcpt string) int {
	t.Helper()
	err := sendMail(sink.Addr(), "alice@example.com", []string{rcpt}, rawMail)
	var smtpErr *smtp.SMTPError
	switch {
	case err == nil:
		return 250
	case errors.As(err, &smtpErr):
		return smtpErr.Code
	}
	t.Fatalf("SendMail: %v", err)
	return 0
}

func TestSMTPSinkFailAll(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	sink.FailTimes("carol@example.net", 1, 550)

	sink.FailAll(451)
	got := []int{smtpReply(t, sink, "bob@example.net"), smtpReply(t, sink, "carol@example.net")}
	sink.FailAll(0)
	// Carol's own programmed rejection was left for after the outage.
	got = append(got, smtpReply(t, sink, "bob@example.net"), smtpReply(t, sink, "carol@example.net"), smtpReply(t, sink, "carol@example.net"))

	if diff := cmp.Diff([]int{451, 451, 250, 550, 250}, got); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	if sink.Count() != 2 || sink.Attempts("bob@example.net") != 2 || sink.Attempts("carol@example.net") != 3 {
		t.Errorf("Count = %d, Attempts = %d and %d; want 2, 2 and 3", sink.Count(), sink.Attempts("bob@example.net"), sink.Attempts("carol@example.net"))
	}
}

func TestSMSSinkFailAll(t *testing.T) {
	sink := deliverytest.NewSMSSink(t)
	form := func(to string) url.Values {
		return url.Values{"To": {to}, "From": {"+15550000001"}, "Body": {"hi"}}
	}
	post := func(to string) int {
		status, _ := postSMS(t, sink, sink.AccountSID, sink.AccountSID, sink.AuthToken, form(to))
		return status
	}
	sink.FailTimes("+15550100002", 1, 500)

	sink.FailAll(503)
	got := []int{post("+15550100001"), post("+15550100002")}
	sink.FailAll(0)
	got = append(got, post("+15550100001"), post("+15550100002"), post("+15550100002"))

	if diff := cmp.Diff([]int{503, 503, 201, 500, 201}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if sink.Count() != 2 {
		t.Errorf("Count = %d, want 2", sink.Count())
	}
}

// A timed delay holds back only the next requests it counts, and a request whose client gives up
// while it is held is not recorded.
//
// The first request is given up once the sink holds it, not after a fixed time, and the second
// has half a minute: neither depends on how fast a request is answered.
func TestSMSSinkDelayTimes(t *testing.T) {
	const to = "+15550100003"
	// Far longer than any undelayed request takes, even on a loaded machine.
	const delay = time.Minute
	sink := deliverytest.NewSMSSink(t)
	sink.DelayTimes(to, 1, delay)

	send := func(ctx context.Context) error {
		form := url.Values{"To": {to}, "From": {"+15550000001"}, "Body": {"hi"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink.URL()+"/2010-04-01/Accounts/"+sink.AccountSID+"/Messages.json", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sink.AccountSID, sink.AuthToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %s, want 201", resp.Status)
		}
		return nil
	}

	ctx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	first := make(chan error, 1)
	go func() { first <- send(ctx) }()
	heraldtest.Eventually(t, 30*time.Second, "the sink to hold the first request", func() (bool, error) {
		select {
		case err := <-first:
			t.Fatalf("first request: %v before its client gave up, want it held for %s", err, delay)
		default:
		}
		return sink.Attempts(to) == 1, nil
	})
	giveUp()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first request: %v, want it held until its client gave up", err)
	}

	// Only the first request was delayed: the second is answered in half the delay.
	ctx, cancel := context.WithTimeout(context.Background(), delay/2)
	defer cancel()
	if err := send(ctx); err != nil {
		t.Fatalf("second request: %v", err)
	}
	// The request whose client gave up is not recorded.
	if sink.Count() != 1 || sink.Attempts(to) != 2 {
		t.Errorf("Count = %d, Attempts = %d; want 1 and 2", sink.Count(), sink.Attempts(to))
	}
}

func TestSMTPSinkDelayTimes(t *testing.T) {
	const rcpt = "dave@example.net"
	// Long enough that an undelayed exchange stays under it on a loaded machine.
	const delay = 2 * time.Second
	sink := deliverytest.NewSMTPSink(t)
	sink.DelayTimes(rcpt, 1, delay)

	var took []time.Duration
	for range 2 {
		start := time.Now()
		if code := smtpReply(t, sink, rcpt); code != 250 {
			t.Fatalf("reply %d, want 250", code)
		}
		took = append(took, time.Since(start))
	}
	if took[0] < delay || took[1] >= delay {
		t.Errorf("the sends took %v; want the first delayed by %s and the second not", took, delay)
	}
	if sink.Count() != 2 {
		t.Errorf("Count = %d, want 2", sink.Count())
	}
}
