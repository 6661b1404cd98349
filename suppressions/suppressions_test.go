package suppressions_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/suppressions"
)

type setup struct {
	pool  *pgxpool.Pool
	store *suppressions.Store
}

func newSetup(t *testing.T) setup {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return setup{pool: pool, store: suppressions.New(pool)}
}

// eventCount counts the suppression events in the log.
func (s setup) eventCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM event_log WHERE event_type = ANY($1)`,
		[]string{events.TypeRecipientSuppressed, events.TypeRecipientUnsuppressed}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		channel   herald.Channel
		recipient string
		want      string
	}{
		{herald.ChannelEmail, "Ann@Example.COM", "ann@example.com"},
		{herald.ChannelEmail, "Ann Lee <Ann@Example.com>", "ann@example.com"},
		{herald.ChannelSMS, "+14155550123", "+14155550123"},
	} {
		got, err := suppressions.Key(tt.channel, tt.recipient)
		if err != nil || got != tt.want {
			t.Errorf("Key(%s, %q) = %q, %v; want %q", tt.channel, tt.recipient, got, err, tt.want)
		}
	}
	if _, err := suppressions.Key(herald.ChannelSMS, "4155550123"); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("Key of a number without +: %v, want EINVALID", err)
	}
	if suppressions.Stream(herald.ChannelEmail, "a@example.com") == suppressions.Stream(herald.ChannelSMS, "a@example.com") {
		t.Error("one stream for two channels")
	}
}

// TestAddLookupRemove: an operator's suppression holds for any spelling of the address, is an
// event with its actor and reason, and once removed (another event) no longer holds.
func TestAddLookupRemove(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	sup, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelEmail, Recipient: "Ann <ANN@example.com>", Reason: "asked by phone"}, "apikey:ops")
	if err != nil {
		t.Fatal(err)
	}
	if sup.Recipient != "ann@example.com" || sup.Cause != events.SuppressedManual || sup.Reason != "asked by phone" || !sup.Active || sup.CreatedBy != "apikey:ops" {
		t.Errorf("added %+v", sup)
	}
	got, ok, err := s.store.Lookup(ctx, herald.ChannelEmail, "ann@EXAMPLE.com")
	if err != nil || !ok || got.Recipient != "ann@example.com" {
		t.Fatalf("Lookup = %+v, %v, %v; want the suppression", got, ok, err)
	}
	if _, ok, _ := s.store.Lookup(ctx, herald.ChannelSMS, "+14155550123"); ok {
		t.Error("an unlisted recipient is suppressed")
	}

	if _, err := s.store.Remove(ctx, herald.ChannelEmail, "ann@example.com", "apikey:ops", ""); herald.ErrorCode(err) != herald.EINVALID {
		t.Errorf("Remove without a reason: %v, want EINVALID", err)
	}
	removed, err := s.store.Remove(ctx, herald.ChannelEmail, "ann@example.com", "apikey:ops", "mailbox fixed")
	if err != nil {
		t.Fatal(err)
	}
	if removed.Active || removed.RemovedAt == nil {
		t.Errorf("after Remove: %+v", removed)
	}
	if _, ok, _ := s.store.Lookup(ctx, herald.ChannelEmail, "ann@example.com"); ok {
		t.Error("a removed suppression still holds")
	}
	if _, err := s.store.Remove(ctx, herald.ChannelEmail, "ann@example.com", "apikey:ops", "again"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("Remove of a lifted suppression: %v, want ENOTFOUND", err)
	}

	recs, err := s.store.History(ctx, herald.ChannelEmail, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Type != events.TypeRecipientSuppressed || recs[1].Type != events.TypeRecipientUnsuppressed ||
		recs[0].Metadata.Actor != "apikey:ops" || recs[1].Metadata.Actor != "apikey:ops" {
		t.Fatalf("history = %+v", recs)
	}
	ev, err := recs[1].Event()
	if err != nil || ev.(*events.RecipientUnsuppressed).Reason != "mailbox fixed" {
		t.Errorf("unsuppressed event = %+v, %v", ev, err)
	}
	// Suppressed again, the stream goes on.
	if _, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelEmail, Recipient: "ann@example.com", Reason: "again"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.store.History(ctx, herald.ChannelEmail, "ann@example.com"); len(recs) != 3 {
		t.Errorf("history has %d events, want 3", len(recs))
	}
}

// TestExpiry: a suppression with an expiry holds until then and no longer.
func TestExpiry(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	soon := time.Now().Add(1500 * time.Millisecond)
	if _, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelSMS, Recipient: "+14155550123", Reason: "holiday", ExpiresAt: &soon}, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.store.Lookup(ctx, herald.ChannelSMS, "+14155550123"); err != nil || !ok {
		t.Fatalf("before expiry: ok %v, %v", ok, err)
	}
	heraldtest.Eventually(t, 10*time.Second, "the suppression to lapse", func() (bool, error) {
		_, ok, err := s.store.Lookup(ctx, herald.ChannelSMS, "+14155550123")
		return !ok, err
	})
	if !time.Now().After(soon) {
		t.Error("the suppression lapsed before its expiry")
	}
	list, _, err := s.store.List(ctx, suppressions.Filter{})
	if err != nil || len(list) != 0 {
		t.Errorf("List after expiry = %+v, %v; want none", list, err)
	}
	list, _, err = s.store.List(ctx, suppressions.Filter{All: true})
	if err != nil || len(list) != 1 || list[0].Active {
		t.Errorf("List --all after expiry = %+v, %v; want the lapsed entry", list, err)
	}
}

// TestExpiresIn: an expiry given as a duration is counted from the addition.
func TestExpiresIn(t *testing.T) {
	s := newSetup(t)
	before := time.Now()
	sup, err := s.store.Add(context.Background(), suppressions.Add{Channel: herald.ChannelSMS, Recipient: "+14155550123", Reason: "a month off", ExpiresIn: 720 * time.Hour}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if sup.ExpiresAt == nil || sup.ExpiresAt.Before(before.Add(720*time.Hour).Truncate(time.Microsecond)) ||
		sup.ExpiresAt.After(time.Now().Add(720*time.Hour)) || !sup.Active {
		t.Errorf("expires_at = %v, want 720h after the addition, and holding", sup.ExpiresAt)
	}
}

// TestAddRefusesBadInput names each bad field and writes nothing.
func TestAddRefusesBadInput(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	for _, tt := range []struct {
		name  string
		add   suppressions.Add
		field string
	}{
		{"channel", suppressions.Add{Channel: "fax", Recipient: "x", Reason: "r"}, "channel"},
		{"recipient", suppressions.Add{Channel: herald.ChannelEmail, Recipient: "not-an-address", Reason: "r"}, "recipient"},
		{"sms recipient", suppressions.Add{Channel: herald.ChannelSMS, Recipient: "555", Reason: "r"}, "recipient"},
		{"reason", suppressions.Add{Channel: herald.ChannelEmail, Recipient: "a@example.com", Reason: "  "}, "reason"},
		{"expiry", suppressions.Add{Channel: herald.ChannelEmail, Recipient: "a@example.com", Reason: "r", ExpiresAt: &past}, "expires_at"},
		{"negative expires_in", suppressions.Add{Channel: herald.ChannelEmail, Recipient: "a@example.com", Reason: "r", ExpiresIn: -time.Hour}, "expires_in"},
		{"both expiries", suppressions.Add{Channel: herald.ChannelEmail, Recipient: "a@example.com", Reason: "r", ExpiresAt: &future, ExpiresIn: time.Hour}, "expires_in"},
	} {
		_, err := s.store.Add(ctx, tt.add, "ops")
		if herald.ErrorCode(err) != herald.EINVALID || herald.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: %v (fields %v), want EINVALID naming %s", tt.name, err, herald.ErrorFields(err), tt.field)
		}
	}
	if n := s.eventCount(t); n != 0 {
		t.Errorf("%d events written for refused input", n)
	}
}

// TestSuppressInIsIdempotentAndRollsBack: a report's suppression is appended once however many
// reports arrive, and goes with the transaction that records the report.
func TestSuppressInIsIdempotentAndRollsBack(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.store.SuppressIn(ctx, tx, herald.ChannelEmail, "bob@example.com", events.SuppressedHardBounce, "5.1.1 user unknown", "0193a4f2-7c1e-7000-8000-000000000001"); err != nil {
			return err
		}
		return fmt.Errorf("the report's append failed")
	})
	if err == nil {
		t.Fatal("the transaction committed")
	}
	if _, ok, _ := s.store.Lookup(ctx, herald.ChannelEmail, "bob@example.com"); ok || s.eventCount(t) != 0 {
		t.Fatal("a rolled-back report's suppression stayed")
	}
	for range 3 {
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			return s.store.SuppressIn(ctx, tx, herald.ChannelEmail, "Bob@example.com", events.SuppressedHardBounce, "5.1.1 user unknown", "0193a4f2-7c1e-7000-8000-000000000001")
		}); err != nil {
			t.Fatal(err)
		}
	}
	sup, ok, err := s.store.Lookup(ctx, herald.ChannelEmail, "bob@example.com")
	if err != nil || !ok || sup.Cause != events.SuppressedHardBounce || sup.NotificationID != "0193a4f2-7c1e-7000-8000-000000000001" || sup.CreatedBy != "system:hard_bounce" {
		t.Fatalf("Lookup = %+v, %v, %v", sup, ok, err)
	}
	if n := s.eventCount(t); n != 1 {
		t.Errorf("%d events for three reports of one recipient, want 1", n)
	}
}

// TestConcurrentSuppressions of one recipient are made one after the other: none fails on the
// stream's version, and the stream has one event per change.
func TestConcurrentSuppressions(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelEmail, Recipient: "cy@example.com", Reason: fmt.Sprint("report ", i)}, "ops")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	recs, err := s.store.History(ctx, herald.ChannelEmail, "cy@example.com")
	if err != nil || len(recs) != 8 {
		t.Fatalf("history: %d events, %v; want 8", len(recs), err)
	}
	sup, err := s.store.Get(ctx, herald.ChannelEmail, "cy@example.com")
	if err != nil || sup.Version != 8 {
		t.Errorf("row at version %d, %v; want 8", sup.Version, err)
	}
}

// TestOptOutAndIn: a recipient's STOP suppresses them, START lifts only their own opt-out.
func TestOptOutAndIn(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	const phone = "+14155550199"
	if err := s.store.OptOut(ctx, phone, "STOP"); err != nil {
		t.Fatal(err)
	}
	if sup, ok, _ := s.store.Lookup(ctx, herald.ChannelSMS, phone); !ok || sup.Cause != events.SuppressedOptOut {
		t.Fatalf("after STOP: %+v, %v", sup, ok)
	}
	if err := s.store.OptIn(ctx, phone, "START"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.store.Lookup(ctx, herald.ChannelSMS, phone); ok {
		t.Fatal("START did not lift the opt-out")
	}
	if _, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelSMS, Recipient: phone, Reason: "fraud"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.OptIn(ctx, phone, "START"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.store.Lookup(ctx, herald.ChannelSMS, phone); !ok {
		t.Error("START lifted an operator's suppression")
	}
}

// TestListPages walks the list a page at a time and filters it.
func TestListPages(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.store.Add(ctx, suppressions.Add{Channel: herald.ChannelEmail, Recipient: fmt.Sprintf("u%d@example.com", i), Reason: "r"}, "ops"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.store.OptOut(ctx, "+14155550100", "STOP"); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for range 10 {
		page, next, err := s.store.List(ctx, suppressions.Filter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			got = append(got, p.Recipient)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	want := []string{"u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com", "u4@example.com", "+14155550100"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
	sms, _, err := s.store.List(ctx, suppressions.Filter{Channel: herald.ChannelSMS})
	if err != nil || len(sms) != 1 || sms[0].Cause != events.SuppressedOptOut {
		t.Errorf("sms = %+v, %v", sms, err)
	}
	byCause, _, err := s.store.List(ctx, suppressions.Filter{Cause: events.SuppressedOptOut})
	if err != nil || len(byCause) != 1 {
		t.Errorf("cause opt_out = %+v, %v", byCause, err)
	}
	for _, f := range []suppressions.Filter{{Cause: "bounce"}, {Channel: "fax"}, {Limit: 5000}, {Cursor: "!!"}} {
		if _, _, err := s.store.List(ctx, f); herald.ErrorCode(err) != herald.EINVALID {
			t.Errorf("List(%+v): %v, want EINVALID", f, err)
		}
	}
}
