package bounces_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/bounces"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

const bounceDomain = "bounce.herald.test"

// suppression is one call a recordingSuppressor received.
type suppression struct {
	Channel                                   herald.Channel
	Recipient, Reason, Detail, NotificationID string
}

// recordingSuppressor remembers the suppressions it is told of, or fails them all with fail.
type recordingSuppressor struct {
	mu    sync.Mutex
	calls []suppression
	fail  error
}

var _ bounces.Suppressor = (*recordingSuppressor)(nil)

func (s *recordingSuppressor) SuppressIn(_ context.Context, _ pgx.Tx, ch herald.Channel, recipient, reason, detail, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.calls = append(s.calls, suppression{ch, recipient, reason, detail, id})
	return nil
}

func (s *recordingSuppressor) Calls() []suppression {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]suppression(nil), s.calls...)
}

// env is a listener on loopback over a fresh database, connected as Herald's runtime role.
type env struct {
	pool       *pgxpool.Pool
	log        *events.Log
	store      *bounces.Store
	addr       string
	reg        *prometheus.Registry
	suppressor *recordingSuppressor
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, bounces.ListenerConfig{Domain: bounceDomain, MaxMessageBytes: 64 << 10})
}

// newEnvWith is newEnv with the listener configured by cfg.
func newEnvWith(t *testing.T, cfg bounces.ListenerConfig) *env {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{pool: pool, log: events.NewLog(pool), store: bounces.NewStore(pool), reg: prometheus.NewRegistry(),
		suppressor: &recordingSuppressor{}}
	rec := bounces.NewRecorder(pool, bounces.RecorderConfig{Suppressor: e.suppressor, Metrics: bounces.NewMetrics(e.reg)})
	l, err := bounces.NewListener(rec, e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	heraldtest.RunInBackground(t, "bounce listener", func(ctx context.Context) error { return l.Serve(ctx, ln) })
	return e
}

// sentEmail appends the stream of an email notification to recipient that was sent, and
// returns its id.
func (e *env) sentEmail(t *testing.T, recipient string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := e.log.Append(context.Background(), id, 0, events.Metadata{Actor: "test"},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: recipient, Content: "c", Body: "c"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "smtp"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// send delivers raw to the listener over SMTP, from MAIL FROM <> to rcpt, and returns the
// error of the conversation.
func (e *env) send(rcpt string, raw []byte) error {
	c, err := smtp.Dial(e.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(""); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (e *env) mustSend(t *testing.T, rcpt string, raw []byte) {
	t.Helper()
	if err := e.send(rcpt, raw); err != nil {
		t.Fatalf("deliver to %s: %v", rcpt, err)
	}
}

// newest is the report received last.
func (e *env) newest(t *testing.T) bounces.Inbound {
	t.Helper()
	list, _, err := e.store.List(context.Background(), bounces.Filter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("newest report: %v (%d)", err, len(list))
	}
	r, err := e.store.Get(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stream is notification id's events after the first three (queued, processing, sent).
func (e *env) reports(t *testing.T, id string) []events.Event {
	t.Helper()
	recs, err := e.log.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for _, r := range recs[3:] {
		ev, err := r.Event()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
		if want := "mta:"; !strings.HasPrefix(r.Metadata.Actor, want) {
			t.Errorf("event %s actor = %q, want mta:…", r.Type, r.Metadata.Actor)
		}
	}
	return out
}

// count reads herald_bounce_reports_total{outcome} from the registry /metrics would serve.
func (e *env) count(outcome string) float64 {
	families, _ := e.reg.Gather()
	for _, f := range families {
		if f.GetName() != "herald_bounce_reports_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func withID(raw []byte, id string) []byte {
	return bytes.ReplaceAll(raw, []byte(fixtureID), []byte(id))
}

func verp(id string) string { return "bounces+" + id + "@" + bounceDomain }

// TestListenerRecordsEachFixture delivers every fixture over SMTP and checks the event on the
// notification's stream, the kept report, the suppression and the metric.
func TestListenerRecordsEachFixture(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		file     string
		rcpt     func(id string) string
		outcome  string
		wantType string
		kind     string
		suppress string
	}{
		{"postfix_hard.eml", verp, bounces.OutcomeHardBounce, events.TypeNotificationBounced, events.BounceHard, bounces.ReasonHardBounce},
		{"exim_hard.eml", verp, bounces.OutcomeHardBounce, events.TypeNotificationBounced, events.BounceHard, bounces.ReasonHardBounce},
		{"gmail_hard.eml", verp, bounces.OutcomeHardBounce, events.TypeNotificationBounced, events.BounceHard, bounces.ReasonHardBounce},
		// Sent to another address of the domain: matched by the returned headers' Message-ID.
		{"microsoft_hard.eml", func(string) string { return "postmaster@" + strings.ToUpper(bounceDomain) }, bounces.OutcomeHardBounce, events.TypeNotificationBounced, events.BounceHard, bounces.ReasonHardBounce},
		{"postfix_delayed.eml", verp, bounces.OutcomeSoftBounce, events.TypeNotificationBounced, events.BounceSoft, ""},
		// Feedback loops send to their own address: matched by X-Herald-Notification-Id, or by
		// the Message-ID when the header was stripped.
		{"arf_yahoo.eml", func(string) string { return "fbl@" + bounceDomain }, bounces.OutcomeComplaint, events.TypeNotificationComplained, "", bounces.ReasonComplaint},
		{"arf_microsoft_jmrp.eml", func(string) string { return "fbl@" + bounceDomain }, bounces.OutcomeComplaint, events.TypeNotificationComplained, "", bounces.ReasonComplaint},
		{"postfix_delivered.eml", verp, bounces.OutcomeIgnored, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			recipient := "Someone <" + strings.TrimSuffix(tt.file, ".eml") + "@example.net>"
			id := e.sentEmail(t, recipient)
			before := e.count(tt.outcome)
			callsBefore := len(e.suppressor.Calls())
			raw := withID(fixture(t, tt.file), id)
			e.mustSend(t, tt.rcpt(id), raw)

			r := e.newest(t)
			if r.Outcome != tt.outcome || r.NotificationID != id {
				t.Errorf("report outcome %q for %q (%s), want %q for %s", r.Outcome, r.NotificationID, r.Detail, tt.outcome, id)
			}
			if !bytes.Equal(bytes.ReplaceAll(r.Raw, []byte("\r\n"), []byte("\n")), raw) || r.Truncated || r.Size != int64(len(r.Raw)) {
				t.Errorf("report kept %d bytes (truncated %v, size %d), want the message as sent", len(r.Raw), r.Truncated, r.Size)
			}
			if got := e.count(tt.outcome) - before; got != 1 {
				t.Errorf("herald_bounce_reports_total{outcome=%q} grew by %g, want 1", tt.outcome, got)
			}

			evs := e.reports(t, id)
			if tt.wantType == "" {
				if len(evs) != 0 {
					t.Fatalf("events after sent = %#v, want none", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].EventType() != tt.wantType {
				t.Fatalf("events after sent = %#v, want one %s", evs, tt.wantType)
			}
			switch ev := evs[0].(type) {
			case *events.NotificationBounced:
				if ev.Kind != tt.kind || ev.ReportID != itoa(r.ID) || ev.Status == "" || ev.ReportingMTA == "" {
					t.Errorf("bounce = %+v, want kind %s, report %d, a status and a reporting MTA", ev, tt.kind, r.ID)
				}
			case *events.NotificationComplained:
				if ev.FeedbackType != "abuse" || ev.ReportID != itoa(r.ID) {
					t.Errorf("complaint = %+v, want abuse, report %d", ev, r.ID)
				}
			}

			calls := e.suppressor.Calls()[callsBefore:]
			if tt.suppress == "" {
				if len(calls) != 0 {
					t.Errorf("suppressions = %+v, want none", calls)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("suppressions = %+v, want one", calls)
			}
			want := suppression{Channel: herald.ChannelEmail, Recipient: recipient, Reason: tt.suppress, Detail: r.Detail, NotificationID: id}
			if diff := cmp.Diff(want, calls[0]); diff != "" || r.Detail == "" {
				t.Errorf("suppression mismatch (-want +got):\n%s (detail %q)", diff, r.Detail)
			}
		})
	}
}

// TestListenerRefusesOtherDomains: the listener is no relay.
func TestListenerRefusesOtherDomains(t *testing.T) {
	e := newEnv(t)
	err := e.send("bob@example.net", fixture(t, "postfix_hard.eml"))
	var reply *textproto.Error
	if !errors.As(err, &reply) || reply.Code != 550 || !strings.HasPrefix(reply.Msg, "5.7.1 ") {
		t.Fatalf("RCPT TO another domain: %v, want 550 5.7.1", err)
	}
	// A domain that ends like the bounce domain is another domain.
	if err := e.send("x@evil"+bounceDomain, fixture(t, "postfix_hard.eml")); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("RCPT TO a look-alike domain: %v, want 550", err)
	}
	if list, _, err := e.store.List(context.Background(), bounces.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("reports kept = %d (%v), want none", len(list), err)
	}
}

// TestListenerRefusesOversizedMail: beyond the size limit the answer is 552 and nothing is kept.
func TestListenerRefusesOversizedMail(t *testing.T) {
	e := newEnv(t)
	big := append(fixture(t, "autoreply.eml"), bytes.Repeat([]byte("x\n"), 64<<10)...)
	if err := e.send(verp(fixtureID), big); err == nil || !strings.Contains(err.Error(), "552") {
		t.Fatalf("oversized message: %v, want 552", err)
	}
	if list, _, err := e.store.List(context.Background(), bounces.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("reports kept = %d (%v), want none", len(list), err)
	}
}

// TestListenerKeepsWhatItCannotUse: mail that is no report, and a report that names no
// notification, are accepted, kept with their outcome and counted.
func TestListenerKeepsWhatItCannotUse(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		rcpt    string
		raw     []byte
		outcome string
	}{
		{"no report", verp(fixtureID), fixture(t, "autoreply.eml"), bounces.OutcomeUnparsable},
		{"unknown notification", verp(fixtureID), fixture(t, "postfix_hard.eml"), bounces.OutcomeUnmatched},
		{"no notification named", "fbl@" + bounceDomain, bytes.ReplaceAll(fixture(t, "arf_microsoft_jmrp.eml"), []byte(fixtureID), []byte("not-a-notification")), bounces.OutcomeUnmatched},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.count(tt.outcome)
			e.mustSend(t, tt.rcpt, tt.raw)
			r := e.newest(t)
			if r.Outcome != tt.outcome || r.Detail == "" || len(r.Raw) == 0 {
				t.Errorf("report outcome %q (%q), %d bytes, want %q with a detail and the message", r.Outcome, r.Detail, len(r.Raw), tt.outcome)
			}
			if got := e.count(tt.outcome) - before; got != 1 {
				t.Errorf("herald_bounce_reports_total{outcome=%q} grew by %g, want 1", tt.outcome, got)
			}
		})
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM event_log`).Scan(&n); err != nil || n != 0 {
		t.Errorf("events in the log = %d (%v), want none", n, err)
	}
}

// TestListenerWritesDuplicatesOnce: a second hard bounce, a second complaint and a soft bounce
// sent twice add no event and no suppression.
func TestListenerWritesDuplicatesOnce(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		first, then string
		rcpt        func(string) string
	}{
		{"hard bounce from two servers", "postfix_hard.eml", "gmail_hard.eml", verp},
		{"complaint from two loops", "arf_yahoo.eml", "arf_microsoft_jmrp.eml", func(string) string { return "fbl@" + bounceDomain }},
		{"soft bounce sent twice", "postfix_delayed.eml", "postfix_delayed.eml", verp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.sentEmail(t, "dup@example.net")
			e.mustSend(t, tt.rcpt(id), withID(fixture(t, tt.first), id))
			calls := len(e.suppressor.Calls())
			e.mustSend(t, tt.rcpt(id), withID(fixture(t, tt.then), id))
			if r := e.newest(t); r.Outcome != bounces.OutcomeDuplicate || r.NotificationID != id {
				t.Errorf("second report outcome %q for %q (%s), want duplicate", r.Outcome, r.NotificationID, r.Detail)
			}
			if evs := e.reports(t, id); len(evs) != 1 {
				t.Errorf("events after sent = %d, want 1", len(evs))
			}
			if got := len(e.suppressor.Calls()); got != calls {
				t.Errorf("suppressions grew by %d, want 0", got-calls)
			}
		})
	}
	// A delay reported after the hard bounce changes nothing.
	id := e.sentEmail(t, "late@example.net")
	e.mustSend(t, verp(id), withID(fixture(t, "postfix_hard.eml"), id))
	e.mustSend(t, verp(id), withID(fixture(t, "postfix_delayed.eml"), id))
	if r := e.newest(t); r.Outcome != bounces.OutcomeIgnored || !strings.Contains(r.Detail, "is bounced") {
		t.Errorf("delay after a hard bounce: outcome %q (%s), want ignored", r.Outcome, r.Detail)
	}
	if evs := e.reports(t, id); len(evs) != 1 {
		t.Errorf("events after a hard bounce and a late delay = %d, want 1", len(evs))
	}

	// A soft bounce with another Message-ID is a new report.
	id = e.sentEmail(t, "again@example.net")
	raw := withID(fixture(t, "postfix_delayed.eml"), id)
	e.mustSend(t, verp(id), raw)
	e.mustSend(t, verp(id), bytes.Replace(raw, []byte("<20261203170540."), []byte("<20261203210540."), 1))
	if evs := e.reports(t, id); len(evs) != 2 {
		t.Errorf("events after two different delay reports = %d, want 2", len(evs))
	}
}

// TestListenerIgnoresUnsentNotifications: a report for a notification that was never sent
// writes no event.
func TestListenerIgnoresUnsentNotifications(t *testing.T) {
	e := newEnv(t)
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := e.log.Append(context.Background(), id, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "x@example.net", Content: "c", Body: "c"}); err != nil {
		t.Fatal(err)
	}
	e.mustSend(t, verp(id), withID(fixture(t, "postfix_hard.eml"), id))
	if r := e.newest(t); r.Outcome != bounces.OutcomeIgnored || !strings.Contains(r.Detail, "never sent") {
		t.Errorf("report outcome %q (%s), want ignored: never sent", r.Outcome, r.Detail)
	}
	if recs, _ := e.log.Load(context.Background(), id); len(recs) != 1 {
		t.Errorf("stream has %d events, want 1", len(recs))
	}
	if calls := e.suppressor.Calls(); len(calls) != 0 {
		t.Errorf("a hard bounce for a pending notification suppressed %+v, want nothing", calls)
	}
}

// TestListenerSuppressesForCancelledNotifications: an email cancelled after an attempt that
// timed out may have reached the recipient's server after all; its hard bounce writes no event
// (the stream is final) but puts the recipient on the list.
func TestListenerSuppressesForCancelledNotifications(t *testing.T) {
	e := newEnv(t)
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := e.log.Append(context.Background(), id, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "gone@example.net", Content: "c", Body: "c"},
		&events.NotificationProcessing{Attempt: 1},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "i/o timeout"},
		&events.NotificationCancelled{Actor: "apikey:shop"}); err != nil {
		t.Fatal(err)
	}
	e.mustSend(t, verp(id), withID(fixture(t, "postfix_hard.eml"), id))
	if r := e.newest(t); r.Outcome != bounces.OutcomeIgnored || !strings.Contains(r.Detail, "suppressed all the same") {
		t.Errorf("report outcome %q (%s), want ignored, the recipient suppressed", r.Outcome, r.Detail)
	}
	if recs, _ := e.log.Load(context.Background(), id); len(recs) != 4 {
		t.Errorf("stream has %d events, want the 4 it had", len(recs))
	}
	if calls := e.suppressor.Calls(); len(calls) != 1 || calls[0].Recipient != "gone@example.net" || calls[0].Reason != bounces.ReasonHardBounce {
		t.Errorf("suppressions %+v, want gone@example.net for a hard bounce", calls)
	}
}

// TestFailingSuppressionRollsBackTheEvent: the event and the suppression are one transaction:
// when suppressing fails, no event is recorded, the sender is told to try again (451), and the
// report is kept as failed.
func TestFailingSuppressionRollsBackTheEvent(t *testing.T) {
	e := newEnv(t)
	e.suppressor.fail = errors.New("suppression list unavailable")
	id := e.sentEmail(t, "roll@example.net")
	err := e.send(verp(id), withID(fixture(t, "postfix_hard.eml"), id))
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("delivery while suppression fails: %v, want 451", err)
	}
	if evs := e.reports(t, id); len(evs) != 0 {
		t.Errorf("events after sent = %#v, want none", evs)
	}
	if r := e.newest(t); r.Outcome != bounces.OutcomeFailed || !strings.Contains(r.Detail, "suppression list unavailable") {
		t.Errorf("report outcome %q (%s), want failed with the cause", r.Outcome, r.Detail)
	}

	// Once it works again, the sender's retry is recorded.
	e.suppressor.mu.Lock()
	e.suppressor.fail = nil
	e.suppressor.mu.Unlock()
	e.mustSend(t, verp(id), withID(fixture(t, "postfix_hard.eml"), id))
	if evs := e.reports(t, id); len(evs) != 1 {
		t.Errorf("events after the retry = %d, want 1", len(evs))
	}
}

// TestSweepDeletesOldReports: reports past the retention are deleted, newer ones kept.
func TestSweepDeletesOldReports(t *testing.T) {
	e := newEnv(t)
	e.mustSend(t, verp(fixtureID), fixture(t, "autoreply.eml"))
	e.mustSend(t, verp(fixtureID), fixture(t, "autoreply.eml"))
	old := e.newest(t)
	if _, err := e.pool.Exec(context.Background(), `UPDATE inbound_reports SET received_at = now() - interval '31 days' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	n, err := e.store.Sweep(context.Background(), bounces.DefaultRetention)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 deleted", n, err)
	}
	if _, err := e.store.Get(context.Background(), old.ID); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("Get(swept) = %v, want not found", err)
	}
	if list, _, _ := e.store.List(context.Background(), bounces.Filter{}); len(list) != 1 {
		t.Errorf("reports left = %d, want 1", len(list))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestStoreListsAndRefuses: the list pages newest first and filters by outcome; bad filters and
// ids are refused as invalid.
func TestStoreListsAndRefuses(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.mustSend(t, verp(fixtureID), fixture(t, "autoreply.eml"))
	}
	e.mustSend(t, verp(fixtureID), fixture(t, "postfix_hard.eml"))
	ctx := context.Background()

	page, next, err := e.store.List(ctx, bounces.Filter{Limit: 3})
	if err != nil || len(page) != 3 || next != page[2].ID || page[0].Outcome != bounces.OutcomeUnmatched {
		t.Fatalf("first page = %d reports, next %d, err %v; want 3 newest first (unmatched), next = the last's id", len(page), next, err)
	}
	rest, next, err := e.store.List(ctx, bounces.Filter{Limit: 3, Before: next})
	if err != nil || len(rest) != 1 || next != 0 || rest[0].ID >= page[2].ID {
		t.Fatalf("second page = %d reports, next %d, err %v; want the oldest one and no next", len(rest), next, err)
	}
	if len(page[0].Raw) != 0 {
		t.Errorf("a list carries raw messages (%d bytes), want none", len(page[0].Raw))
	}
	only, _, err := e.store.List(ctx, bounces.Filter{Outcome: bounces.OutcomeUnparsable})
	if err != nil || len(only) != 3 {
		t.Errorf("unparsable reports = %d (%v), want 3", len(only), err)
	}

	for _, f := range []bounces.Filter{{Outcome: "bounced"}, {Limit: -1}, {Limit: bounces.MaxListPage + 1}, {Before: -5}} {
		if _, _, err := e.store.List(ctx, f); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("List(%+v) = %v, want invalid", f, err)
		}
	}
	for _, id := range []string{"x", "0", "-1", "1e3"} {
		if _, err := bounces.ParseReportID(id); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("ParseReportID(%q) = %v, want invalid", id, err)
		}
	}
}

// TestListenerBoundsConnections: past MaxConnections conversations, a client is told to try
// again (451) at HELO; once one ends, the next is served.
func TestListenerBoundsConnections(t *testing.T) {
	e := newEnvWith(t, bounces.ListenerConfig{Domain: bounceDomain, MaxConnections: 2})
	var open []*smtp.Client
	for range 2 {
		c, err := smtp.Dial(e.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Fatalf("HELO within the limit: %v", err)
		}
		open = append(open, c)
	}
	extra, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	var reply *textproto.Error
	if err := extra.Hello("client.test"); !errors.As(err, &reply) || reply.Code != 451 {
		t.Fatalf("HELO past the limit: %v, want 451", err)
	}
	extra.Close()
	if err := open[0].Quit(); err != nil {
		t.Fatal(err)
	}
	open[1].Close()
	heraldtest.Eventually(t, 5*time.Second, "a conversation to be served again", func() (bool, error) {
		return e.send(verp(fixtureID), fixture(t, "autoreply.eml")) == nil, nil
	})
}

// TestListenerReturnsWhenItsSocketFails: a listener whose socket is closed under it returns an
// error instead of hanging, so that the process stops rather than run deaf.
func TestListenerReturnsWhenItsSocketFails(t *testing.T) {
	pool := heraldtest.NewDatabase(t).Pool
	l, err := bounces.NewListener(bounces.NewRecorder(pool, bounces.RecorderConfig{}), bounces.NewStore(pool),
		bounces.ListenerConfig{Domain: bounceDomain})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(t.Context(), ln) }()
	heraldtest.Eventually(t, 5*time.Second, "the listener to serve", func() (bool, error) {
		return l.Ready(context.Background()) == nil, nil
	})
	ln.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its socket closed, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10s after its socket closed")
	}
}

// TestListenerTakesEightBitReports: mail servers write diagnostics and headers in any charset; a
// report with bytes that are not UTF-8 is recorded (the bytes replaced), and one with a NUL is
// kept as unparsable, neither refused with 451 for the sender to retry, failing, for days.
func TestListenerTakesEightBitReports(t *testing.T) {
	e := newEnv(t)
	id := e.sentEmail(t, "latin@example.net")
	raw := withID(fixture(t, "postfix_hard.eml"), id)
	latin := bytes.Replace(raw, []byte("Diagnostic-Code: smtp;"), []byte("Diagnostic-Code: smtp; Adresse inconnue \xe9\xe8;"), 1)
	latin = bytes.Replace(latin, []byte("Message-Id: <"), []byte("Message-Id: <\xe9"), 1)
	if !bytes.Contains(latin, []byte("inconnue \xe9\xe8")) || !bytes.Contains(latin, []byte("<\xe9")) {
		t.Fatal("the fixture has no Diagnostic-Code or Message-ID to spoil")
	}
	e.mustSend(t, verp(id), latin)
	r := e.newest(t)
	if r.Outcome != bounces.OutcomeHardBounce || r.NotificationID != id {
		t.Fatalf("report outcome %q for %q (%s), want hard_bounce for %s", r.Outcome, r.NotificationID, r.Detail, id)
	}
	evs := e.reports(t, id)
	if len(evs) != 1 {
		t.Fatalf("events after sent = %#v, want one bounce", evs)
	}
	if b := evs[0].(*events.NotificationBounced); !strings.Contains(b.Diagnostic, "Adresse inconnue \uFFFD;") {
		t.Errorf("diagnostic = %q, want the 8-bit bytes replaced", b.Diagnostic)
	}
	if !strings.HasPrefix(r.MessageID, "\uFFFD") {
		t.Errorf("report Message-ID = %q, want its 8-bit byte replaced", r.MessageID)
	}

	other := e.sentEmail(t, "nul@example.net")
	nul := bytes.Replace(withID(fixture(t, "postfix_hard.eml"), other), []byte("Diagnostic-Code: smtp;"), []byte("Diagnostic-Code: smtp; \x00 \xe9;"), 1)
	e.mustSend(t, verp(other), nul)
	if r := e.newest(t); r.Outcome != bounces.OutcomeUnparsable || strings.ContainsRune(r.Detail, 0) {
		t.Errorf("a report with a NUL: outcome %q, detail %q; want it kept as unparsable", r.Outcome, r.Detail)
	}
}

// TestListenerKeepsTheBeginningOfALargeReport: a report that returns a large message is
// recorded from its beginning; the size kept says how large it was, and the rest is not kept.
func TestListenerKeepsTheBeginningOfALargeReport(t *testing.T) {
	e := newEnvWith(t, bounces.ListenerConfig{Domain: bounceDomain, MaxMessageBytes: 4 * bounces.MaxStoredBytes})
	id := e.sentEmail(t, "large@example.net")
	raw := withID(fixture(t, "postfix_hard.eml"), id)
	// A long body for the returned message, before the closing boundary.
	end := bytes.LastIndex(raw, []byte("\n--"))
	if end < 0 {
		t.Fatal("the fixture has no closing boundary")
	}
	filler := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\n"), (3*bounces.MaxStoredBytes)/77)
	large := slices.Concat(raw[:end+1], filler, raw[end+1:])
	e.mustSend(t, verp(id), large)

	r := e.newest(t)
	if r.Outcome != bounces.OutcomeHardBounce || r.NotificationID != id {
		t.Fatalf("report outcome %q for %q (%s), want hard_bounce for %s", r.Outcome, r.NotificationID, r.Detail, id)
	}
	if !r.Truncated || len(r.Raw) != bounces.MaxStoredBytes || r.Size < int64(len(large)) {
		t.Errorf("kept %d bytes of %d (truncated %v), want the first %d of at least %d", len(r.Raw), r.Size, r.Truncated, bounces.MaxStoredBytes, len(large))
	}
}
