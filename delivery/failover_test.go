package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/heraldtest"
)

// relays is a failover over two real SMTP relays on loopback: the primary behind a port that a
// test shuts and opens again, the secondary always up.
type relays struct {
	primary, secondary *deliverytest.SMTPSink
	port               *deliverytest.Port
	failover           *delivery.Failover
}

// breakerTimeout is how long the tests' breakers stay open: short, so a test waits little for
// the half-open trial, and long enough that a real SMTP exchange and the checks after the
// breaker opened still see it open on a loaded machine.
const breakerTimeout = 2 * time.Second

func newRelays(t *testing.T) relays {
	t.Helper()
	r := relays{primary: deliverytest.NewSMTPSink(t), secondary: deliverytest.NewSMTPSink(t)}
	r.port = deliverytest.NewPort(t, r.primary.Addr())
	primary := newSMTP(t, r.primary, func(c *delivery.SMTPConfig) { c.Port = r.port.Port() })
	secondary := newSMTP(t, r.secondary, func(c *delivery.SMTPConfig) { c.Name = "smtp-2" })
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 2, Timeout: breakerTimeout}, primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	r.failover = f
	return r
}

// state returns the failover's breaker state of provider.
func state(t *testing.T, f *delivery.Failover, provider string) delivery.BreakerStatus {
	t.Helper()
	for _, s := range f.Status() {
		if s.Provider == provider {
			return s
		}
	}
	t.Fatalf("no breaker for %s in %+v", provider, f.Status())
	return delivery.BreakerStatus{}
}

func passedOverNames(r delivery.Route) []string {
	var out []string
	for _, p := range r.FailedOverFrom {
		out = append(out, p.Provider)
	}
	return out
}

// TestFailoverMovesToSecondaryAndBack: with the primary's port closed, each attempt is taken by
// the secondary and says it failed over from the primary; after two failures the primary's
// breaker opens and it is passed over without a try; once the primary is back and the breaker's
// timeout has passed, the half-open trial goes to the primary and traffic stays there.
func TestFailoverMovesToSecondaryAndBack(t *testing.T) {
	r := newRelays(t)
	ctx := context.Background()
	r.port.Shut()

	for i := 1; i <= 2; i++ {
		id, route, err := r.failover.SendVia(ctx, email(fmt.Sprintf("ntf-down-%d", i), "bob@example.net"))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if route.Provider != "smtp-2" || !cmp.Equal(passedOverNames(route), []string{"smtp"}) {
			t.Fatalf("send %d route = %+v, want smtp-2 after smtp", i, route)
		}
		if !strings.Contains(route.FailedOverFrom[0].Error, "connection refused") {
			t.Errorf("send %d: smtp's error = %q, want connection refused", i, route.FailedOverFrom[0].Error)
		}
		if want := fmt.Sprintf("ntf-down-%d@example.com", i); id != want {
			t.Errorf("send %d id = %q, want %q", i, id, want)
		}
	}
	if got := len(r.secondary.Received("bob@example.net")); got != 2 {
		t.Fatalf("secondary received %d, want 2", got)
	}
	if s := state(t, r.failover, "smtp"); s.State != delivery.BreakerOpen || s.ConsecutiveFailures != 2 || !strings.Contains(s.LastError, "connection refused") {
		t.Fatalf("primary breaker = %+v, want open after 2 failures, with the last error", s)
	}
	if got := breakerGauge(t, r.failover, "smtp"); got != 2 {
		t.Errorf("herald_provider_breaker_state{provider=smtp} = %v, want 2 (open)", got)
	}

	// Open: passed over without a connection.
	_, route, err := r.failover.SendVia(ctx, email("ntf-open", "bob@example.net"))
	if err != nil || route.Provider != "smtp-2" || !strings.Contains(route.FailedOverFrom[0].Error, delivery.ErrCircuitOpen.Error()) {
		t.Fatalf("send while open: route %+v, err %v; want smtp-2 after smtp's open circuit", route, err)
	}

	// The primary comes back; after the timeout, traffic returns to it.
	r.port.Open()
	heraldtest.Eventually(t, 10*time.Second, "the primary's breaker to turn half-open", func() (bool, error) {
		s := state(t, r.failover, "smtp")
		return s.State == delivery.BreakerHalfOpen, fmt.Errorf("state %s", s.State)
	})
	for i := 1; i <= 3; i++ {
		_, route, err := r.failover.SendVia(ctx, email(fmt.Sprintf("ntf-back-%d", i), "bob@example.net"))
		if err != nil || route.Provider != "smtp" || len(route.FailedOverFrom) != 0 {
			t.Fatalf("send %d after the primary came back: route %+v, err %v; want smtp alone", i, route, err)
		}
	}
	if got := len(r.primary.Received("bob@example.net")); got != 3 {
		t.Errorf("primary received %d, want 3", got)
	}
	if s := state(t, r.failover, "smtp"); s.State != delivery.BreakerClosed || s.ConsecutiveFailures != 0 || s.LastError != "" {
		t.Errorf("primary breaker = %+v, want closed with no failures and no error left from its outage", s)
	}
	if got := len(r.secondary.Received("bob@example.net")); got != 3 {
		t.Errorf("secondary received %d in all, want 3 (none after the primary came back)", got)
	}
}

// breakerGauge returns the breaker state gauge of provider, as /metrics shows it.
func breakerGauge(t *testing.T, f *delivery.Failover, provider string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(delivery.Metrics(f))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "herald_provider_breaker_state" {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == provider {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no herald_provider_breaker_state for %s", provider)
	return 0
}

// TestFailoverOnTransientReply: a relay's 4xx is transient, so the attempt moves on; the
// outcome is counted per provider.
func TestFailoverOnTransientReply(t *testing.T) {
	r := newRelays(t)
	r.primary.FailTimes("carol@example.net", 1, 451)
	_, route, err := r.failover.SendVia(context.Background(), email("ntf-451", "carol@example.net"))
	if err != nil || route.Provider != "smtp-2" || !strings.Contains(route.FailedOverFrom[0].Error, "451") {
		t.Fatalf("route %+v, err %v; want smtp-2 after smtp's 451", route, err)
	}
	want := `
# HELP herald_provider_sends_total Provider calls of delivery attempts through a failover list, by outcome: sent, transient_error, permanent_error, or skipped_open (its breaker let nothing through).
# TYPE herald_provider_sends_total counter
herald_provider_sends_total{channel="email",outcome="permanent_error",provider="smtp"} 0
herald_provider_sends_total{channel="email",outcome="permanent_error",provider="smtp-2"} 0
herald_provider_sends_total{channel="email",outcome="sent",provider="smtp"} 0
herald_provider_sends_total{channel="email",outcome="sent",provider="smtp-2"} 1
herald_provider_sends_total{channel="email",outcome="skipped_open",provider="smtp"} 0
herald_provider_sends_total{channel="email",outcome="skipped_open",provider="smtp-2"} 0
herald_provider_sends_total{channel="email",outcome="transient_error",provider="smtp"} 1
herald_provider_sends_total{channel="email",outcome="transient_error",provider="smtp-2"} 0
`
	if err := testutil.CollectAndCompare(delivery.Metrics(r.failover), strings.NewReader(want), "herald_provider_sends_total"); err != nil {
		t.Error(err)
	}
}

// TestFailoverStopsAtPermanentRefusal: the primary refusing the address for good (550 to RCPT)
// ends the attempt there: the secondary would refuse it too, and is not asked. The refusal
// proves the primary answers: its breaker counts no failure.
func TestFailoverStopsAtPermanentRefusal(t *testing.T) {
	r := newRelays(t)
	r.primary.AlwaysFail("nobody@example.net", 550)
	for i := range 3 {
		_, route, err := r.failover.SendVia(context.Background(), email(fmt.Sprintf("ntf-550-%d", i), "nobody@example.net"))
		if !delivery.IsPermanent(err) || route.Provider != "smtp" || len(route.FailedOverFrom) != 0 {
			t.Fatalf("send %d: route %+v, err %v; want smtp's permanent error, no failover", i, route, err)
		}
	}
	if got := r.secondary.Attempts("nobody@example.net"); got != 0 {
		t.Errorf("secondary was asked %d times, want 0", got)
	}
	if s := state(t, r.failover, "smtp"); s.State != delivery.BreakerClosed || s.ConsecutiveFailures != 0 {
		t.Errorf("primary breaker = %+v, want closed, no failures", s)
	}
}

// TestFailoverEveryProviderDown: when every provider fails, the attempt fails with the last
// one's error, transient, so it is retried; the route names both.
func TestFailoverEveryProviderDown(t *testing.T) {
	r := newRelays(t)
	r.port.Shut()
	r.secondary.FailAll(421)
	for i := range 4 {
		_, route, err := r.failover.SendVia(context.Background(), email(fmt.Sprintf("ntf-all-%d", i), "dave@example.net"))
		if err == nil || delivery.IsPermanent(err) {
			t.Fatalf("send %d: err %v, want a transient error", i, err)
		}
		if route.Provider != "smtp-2" || !cmp.Equal(passedOverNames(route), []string{"smtp"}) {
			t.Fatalf("send %d: route %+v, want smtp-2 after smtp", i, route)
		}
		if i >= 2 && !errors.Is(err, delivery.ErrCircuitOpen) {
			// Both breakers opened after two failures each.
			t.Errorf("send %d: err %v, want the secondary's open circuit", i, err)
		}
	}
}

// TestFailoverSMS: a gateway's 503 moves the attempt to the next gateway; its 400 for a bad
// number does not.
func TestFailoverSMS(t *testing.T) {
	primarySink, secondarySink := deliverytest.NewSMSSink(t), deliverytest.NewSMSSink(t)
	gateway := func(sink *deliverytest.SMSSink, name string) delivery.Provider {
		p, err := delivery.NewHTTPSMS(delivery.SMSConfig{Name: name, URL: sink.URL(), AccountSID: deliverytest.SMSAccountSID, AuthToken: deliverytest.SMSAuthToken,
			From: "+15005550006", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f, err := delivery.NewFailover(herald.ChannelSMS, delivery.BreakerConfig{Failures: 5, Timeout: time.Minute},
		gateway(primarySink, ""), gateway(secondarySink, "backup"))
	if err != nil {
		t.Fatal(err)
	}
	sms := func(id, to string) delivery.Message {
		return delivery.Message{NotificationID: id, Attempt: 1, Channel: herald.ChannelSMS, Recipient: to, Body: "code 1234"}
	}

	primarySink.FailTimes("+14155550100", 1, http.StatusServiceUnavailable)
	_, route, err := f.SendVia(context.Background(), sms("ntf-sms-1", "+14155550100"))
	if err != nil || route.Provider != "backup" || !cmp.Equal(passedOverNames(route), []string{delivery.HTTPSMSName}) {
		t.Fatalf("route %+v, err %v; want backup after http-sms", route, err)
	}
	if got := len(secondarySink.Received("+14155550100")); got != 1 {
		t.Errorf("backup gateway received %d, want 1", got)
	}

	primarySink.AlwaysFail("+1555", http.StatusBadRequest)
	_, route, err = f.SendVia(context.Background(), sms("ntf-sms-2", "+1555"))
	if !delivery.IsPermanent(err) || route.Provider != delivery.HTTPSMSName || len(route.FailedOverFrom) != 0 {
		t.Fatalf("route %+v, err %v; want http-sms's permanent error, no failover", route, err)
	}
	if got := secondarySink.Attempts("+1555"); got != 0 {
		t.Errorf("backup gateway was asked %d times, want 0", got)
	}
}

// TestNewFailoverRefusesTwoProvidersOfOneName: events and metrics tell providers apart by name.
func TestNewFailoverRefusesTwoProvidersOfOneName(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	_, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{}, newSMTP(t, sink, nil), newSMTP(t, sink, nil))
	if err == nil || !strings.Contains(err.Error(), `two providers are named "smtp"`) {
		t.Fatalf("err = %v, want two providers named smtp", err)
	}
}

// scripted is a provider whose answer the test sets: send is called with each message.
type scripted struct {
	name string
	send func(ctx context.Context) (string, error)
}

func (p *scripted) Name() string { return p.name }
func (p *scripted) Send(ctx context.Context, _ delivery.Message) (string, error) {
	return p.send(ctx)
}

// TestHalfOpenLetsOneTrialThrough: while the primary's trial is under way, the other attempts go
// to the secondary instead of piling onto a provider that may still be down; the trial's success
// closes the breaker.
func TestHalfOpenLetsOneTrialThrough(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var healthy atomic.Bool
	primary := &scripted{name: "a", send: func(context.Context) (string, error) {
		if !healthy.Load() {
			return "", errors.New("connection refused")
		}
		entered <- struct{}{}
		<-release
		return "a-id", nil
	}}
	secondary := &scripted{name: "b", send: func(context.Context) (string, error) { return "b-id", nil }}
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 1, Timeout: 50 * time.Millisecond}, primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, route, err := f.SendVia(ctx, email("n1", "x@example.net")); err != nil || route.Provider != "b" {
		t.Fatalf("first send: route %+v, err %v; want b", route, err)
	}
	heraldtest.Eventually(t, 5*time.Second, "a's breaker to turn half-open", func() (bool, error) {
		s := state(t, f, "a")
		return s.State == delivery.BreakerHalfOpen, fmt.Errorf("state %s", s.State)
	})
	healthy.Store(true)
	trial := make(chan delivery.Route, 1)
	go func() {
		_, route, _ := f.SendVia(ctx, email("n2", "x@example.net"))
		trial <- route
	}()
	<-entered
	_, route, err := f.SendVia(ctx, email("n3", "x@example.net"))
	if err != nil || route.Provider != "b" || !strings.Contains(route.FailedOverFrom[0].Error, "circuit breaker open") {
		t.Fatalf("send during the trial: route %+v, err %v; want b after a's breaker", route, err)
	}
	close(release)
	if r := <-trial; r.Provider != "a" || len(r.FailedOverFrom) != 0 {
		t.Errorf("trial route %+v, want a alone", r)
	}
	if s := state(t, f, "a"); s.State != delivery.BreakerClosed {
		t.Errorf("a's breaker is %s after a successful trial, want closed", s.State)
	}
}

// TestCancelledAttemptIsNotTheProvidersFault: an attempt cancelled by a shutdown neither counts
// against the provider nor moves on to the next one.
func TestCancelledAttemptIsNotTheProvidersFault(t *testing.T) {
	var secondaryCalls atomic.Int32
	primary := &scripted{name: "a", send: func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", fmt.Errorf("send: %w", ctx.Err())
	}}
	secondary := &scripted{name: "b", send: func(context.Context) (string, error) { secondaryCalls.Add(1); return "b-id", nil }}
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 1, Timeout: time.Minute}, primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, route, err := f.SendVia(ctx, email("n1", "x@example.net"))
	if !errors.Is(err, context.Canceled) || route.Provider != "a" {
		t.Fatalf("route %+v, err %v; want a's cancellation", route, err)
	}
	if n := secondaryCalls.Load(); n != 0 {
		t.Errorf("b called %d times after the attempt was cancelled, want 0", n)
	}
	if s := state(t, f, "a"); s.State != delivery.BreakerClosed || s.ConsecutiveFailures != 0 {
		t.Errorf("a's breaker = %+v after a cancelled attempt, want closed with no failures", s)
	}
}

// TestPermanentRefusalAfterAnOutageIsNotFinal: with the primary down (its port closed) and the
// secondary refusing every message for good because of its own setup (550 to RCPT, as a relay
// that denies relaying does), the attempt fails transiently, naming both providers: without the
// secondary the primary's outage would have been retried. The same holds once the primary's
// breaker is open and it is passed over without a try.
func TestPermanentRefusalAfterAnOutageIsNotFinal(t *testing.T) {
	r := newRelays(t)
	r.port.Shut()
	r.secondary.FailAll(550)
	for i := range 3 {
		_, route, err := r.failover.SendVia(context.Background(), email(fmt.Sprintf("ntf-relay-%d", i), "erin@example.net"))
		if err == nil || delivery.IsPermanent(err) {
			t.Fatalf("send %d: err %v, want a transient error", i, err)
		}
		if route.Provider != "smtp-2" || !cmp.Equal(passedOverNames(route), []string{"smtp"}) {
			t.Fatalf("send %d: route %+v, want smtp-2 after smtp", i, route)
		}
		for _, want := range []string{"smtp-2 refused", "550", "smtp failed transiently"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("send %d: err %q does not say %q", i, err, want)
			}
		}
		wantPrimary := "connection refused"
		if i == 2 {
			// The primary's breaker opened after two failures.
			wantPrimary = delivery.ErrCircuitOpen.Error()
		}
		if !strings.Contains(route.FailedOverFrom[0].Error, wantPrimary) || !strings.Contains(err.Error(), wantPrimary) {
			t.Errorf("send %d: smtp's error %q, attempt's %q; want both to say %q", i, route.FailedOverFrom[0].Error, err, wantPrimary)
		}
	}
	if got := r.secondary.Attempts("erin@example.net"); got != 3 {
		t.Errorf("secondary was asked %d times, want 3", got)
	}
}

// TestUnsentIsNeitherSuccessNorFailure: a message Herald refuses before contacting the provider
// (a recipient that is no email address) says nothing about the provider: it does not close a
// half-open breaker, whose trial stays available to the next message.
func TestUnsentIsNeitherSuccessNorFailure(t *testing.T) {
	sink := deliverytest.NewSMTPSink(t)
	port := deliverytest.NewPort(t, sink.Addr())
	primary := newSMTP(t, sink, func(c *delivery.SMTPConfig) { c.Port = port.Port() })
	f, err := delivery.NewFailover(herald.ChannelEmail, delivery.BreakerConfig{Failures: 1, Timeout: breakerTimeout}, primary)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	port.Shut()
	if _, _, err := f.SendVia(ctx, email("ntf-down", "frank@example.net")); err == nil || delivery.IsPermanent(err) {
		t.Fatalf("send while down: err %v, want a transient error", err)
	}
	heraldtest.Eventually(t, 10*time.Second, "the breaker to turn half-open", func() (bool, error) {
		s := state(t, f, "smtp")
		return s.State == delivery.BreakerHalfOpen, fmt.Errorf("state %s", s.State)
	})

	_, route, err := f.SendVia(ctx, email("ntf-bad", "not an address"))
	if !delivery.IsPermanent(err) || !delivery.IsUnsent(err) || route.Provider != "smtp" {
		t.Fatalf("send to a bad address: route %+v, err %v; want smtp's permanent refusal, unsent", route, err)
	}
	if s := state(t, f, "smtp"); s.State != delivery.BreakerHalfOpen || s.ConsecutiveFailures != 1 {
		t.Fatalf("breaker after a message never sent = %+v, want still half-open with its failure", s)
	}
	// The trial is still free: the next message tries the provider, which is still down.
	_, _, err = f.SendVia(ctx, email("ntf-trial", "frank@example.net"))
	if err == nil || errors.Is(err, delivery.ErrCircuitOpen) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("trial: err %v, want the provider's connection refused", err)
	}
	if s := state(t, f, "smtp"); s.State != delivery.BreakerOpen {
		t.Errorf("breaker after a failed trial = %+v, want open", s)
	}
}
