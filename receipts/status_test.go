package receipts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/receipts"
)

func delivered(sid string) receipts.StatusCallback {
	return receipts.StatusCallback{MessageSID: sid, MessageStatus: "delivered", To: "+15550100001", From: "+15005550006", AccountSID: "AC1"}
}

func undelivered(sid string) receipts.StatusCallback {
	cb := delivered(sid)
	cb.MessageStatus, cb.ErrorCode, cb.ErrorMessage = "undelivered", "30003", "Unreachable destination handset"
	return cb
}

// Given a notification, when a callback arrives, then this event or nothing, and why.
func TestDecide(t *testing.T) {
	sent := herald.Notification{Status: herald.StatusSent}
	failedCB := undelivered("SM1")
	failedCB.MessageStatus = "failed"
	tests := []struct {
		name        string
		given       herald.Notification
		when        receipts.StatusCallback
		thenEvent   events.Event
		thenOutcome receipts.Outcome
	}{
		{"sent, delivered", sent, delivered("SM1"),
			&events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "delivered"}, receipts.OutcomeRecorded},
		{"sent, Delivered in capitals", sent, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "Delivered"},
			&events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "delivered"}, receipts.OutcomeRecorded},
		{"sent, undelivered", sent, undelivered("SM1"),
			&events.NotificationUndelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "undelivered",
				ErrorCode: "30003", Error: "Unreachable destination handset"}, receipts.OutcomeRecorded},
		{"sent, failed", sent, failedCB,
			&events.NotificationUndelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "failed",
				ErrorCode: "30003", Error: "Unreachable destination handset"}, receipts.OutcomeRecorded},
		{"sent, queued", sent, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "queued"}, nil, receipts.OutcomeIntermediate},
		{"sent, sent", sent, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "sent"}, nil, receipts.OutcomeIntermediate},
		{"sent, read", sent, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "read"}, nil, receipts.OutcomeIntermediate},
		{"sent, a status Herald does not know", sent, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "teleported"}, nil, receipts.OutcomeIntermediate},
		{"delivered, delivered again", herald.Notification{Status: herald.StatusDelivered}, delivered("SM1"), nil, receipts.OutcomeDuplicate},
		{"delivered, then undelivered", herald.Notification{Status: herald.StatusDelivered}, undelivered("SM1"), nil, receipts.OutcomeDuplicate},
		{"undelivered, then delivered", herald.Notification{Status: herald.StatusUndelivered}, delivered("SM1"), nil, receipts.OutcomeDuplicate},
		{"delivered, read", herald.Notification{Status: herald.StatusDelivered}, receipts.StatusCallback{MessageSID: "SM1", MessageStatus: "read"}, nil, receipts.OutcomeIntermediate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, outcome := receipts.Decide(tt.given, tt.when)
			if outcome != tt.thenOutcome {
				t.Errorf("outcome = %q, want %q", outcome, tt.thenOutcome)
			}
			if diff := cmp.Diff(tt.thenEvent, e); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

// recorderDB is a fresh database, with a recorder that connects as the runtime role, as the
// API does.
type recorderDB struct {
	owner    *pgxpool.Pool
	runtime  *pgxpool.Pool
	recorder *receipts.Recorder
}

func newRecorderDB(t *testing.T) *recorderDB {
	t.Helper()
	db := heraldtest.NewDatabase(t)
	runtime, err := pgxpool.New(t.Context(), db.RuntimeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runtime.Close)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	return &recorderDB{owner: db.Pool, runtime: runtime, recorder: receipts.NewRecorder(runtime, logger)}
}

// sentSMS appends an SMS notification sent through the gateway with message id sid, and returns
// its id.
func (d *recorderDB) sentSMS(t *testing.T, sid string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := events.NewLog(d.runtime).Append(t.Context(), id, 0, events.Metadata{Actor: "test", CorrelationID: "send-" + sid},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100001", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "http-sms", ProviderMessageID: sid})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (d *recorderDB) stream(t *testing.T, id string) []events.Recorded {
	t.Helper()
	recs, err := events.NewLog(d.owner).Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (d *recorderDB) logSize(t *testing.T) int {
	t.Helper()
	var n int
	if err := d.owner.QueryRow(t.Context(), `SELECT count(*) FROM event_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordDelivered(t *testing.T) {
	d := newRecorderDB(t)
	id := d.sentSMS(t, "SMdelivered1")
	d.sentSMS(t, "SMother")
	ctx := herald.WithCorrelationID(t.Context(), "corr-1")

	outcome, err := d.recorder.Record(ctx, delivered("SMdelivered1"))
	if err != nil || outcome != receipts.OutcomeRecorded {
		t.Fatalf("Record = %q, %v; want recorded", outcome, err)
	}
	recs := d.stream(t, id)
	if len(recs) != 4 {
		t.Fatalf("stream has %d events, want 4", len(recs))
	}
	last := recs[3]
	if last.Type != events.TypeNotificationDelivered || last.Version != 4 {
		t.Fatalf("last event %s v%d, want NotificationDelivered v4", last.Type, last.Version)
	}
	var got events.NotificationDelivered
	if err := json.Unmarshal(last.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SMdelivered1", ProviderStatus: "delivered"}
	if got != want {
		t.Errorf("event data %+v, want %+v", got, want)
	}
	if md, want := last.Metadata, (events.Metadata{CorrelationID: "send-SMdelivered1", CausationID: "corr-1", Actor: "gateway:http-sms"}); !cmp.Equal(md, want) {
		t.Errorf("metadata %+v, want %+v: the notification's correlation id, the callback's as the cause", md, want)
	}
	n, err := events.Fold(recs)
	if err != nil || n.Status != herald.StatusDelivered {
		t.Errorf("folded status %s (%v), want delivered", n.Status, err)
	}

	// The same report again, and a late one that contradicts it: nothing more.
	before := d.logSize(t)
	for _, cb := range []receipts.StatusCallback{delivered("SMdelivered1"), undelivered("SMdelivered1")} {
		outcome, err := d.recorder.Record(t.Context(), cb)
		if err != nil || outcome != receipts.OutcomeDuplicate {
			t.Errorf("Record %s again = %q, %v; want duplicate", cb.MessageStatus, outcome, err)
		}
	}
	if after := d.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d events on repeated reports", before, after)
	}
}

func TestRecordUndelivered(t *testing.T) {
	d := newRecorderDB(t)
	id := d.sentSMS(t, "SMundelivered1")
	outcome, err := d.recorder.Record(t.Context(), undelivered("SMundelivered1"))
	if err != nil || outcome != receipts.OutcomeRecorded {
		t.Fatalf("Record = %q, %v; want recorded", outcome, err)
	}
	recs := d.stream(t, id)
	last := recs[len(recs)-1]
	var got events.NotificationUndelivered
	if err := json.Unmarshal(last.Data, &got); err != nil {
		t.Fatal(err)
	}
	want := events.NotificationUndelivered{Provider: "http-sms", ProviderMessageID: "SMundelivered1", ProviderStatus: "undelivered",
		ErrorCode: "30003", Error: "Unreachable destination handset"}
	if last.Type != events.TypeNotificationUndelivered || got != want {
		t.Errorf("last event %s %+v, want NotificationUndelivered %+v", last.Type, got, want)
	}
	n, _ := events.Fold(recs)
	if n.Status != herald.StatusUndelivered || !strings.Contains(n.LastError, "30003") {
		t.Errorf("folded %s with last error %q, want undelivered with 30003", n.Status, n.LastError)
	}
}

func TestRecordWritesNothing(t *testing.T) {
	d := newRecorderDB(t)
	d.sentSMS(t, "SMknown")
	tests := []struct {
		name    string
		cb      receipts.StatusCallback
		want    receipts.Outcome
		wantErr string
	}{
		{"unknown message id", delivered("SMunknown"), receipts.OutcomeUnmatched, ""},
		{"queued", receipts.StatusCallback{MessageSID: "SMknown", MessageStatus: "queued"}, receipts.OutcomeIntermediate, ""},
		{"sent", receipts.StatusCallback{MessageSID: "SMknown", MessageStatus: "sent"}, receipts.OutcomeIntermediate, ""},
		{"read", receipts.StatusCallback{MessageSID: "SMknown", MessageStatus: "read"}, receipts.OutcomeIntermediate, ""},
		{"no message id", receipts.StatusCallback{MessageStatus: "delivered"}, "", herald.EINVALID},
		{"no status", receipts.StatusCallback{MessageSID: "SMknown"}, "", herald.EINVALID},
	}
	before := d.logSize(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome, err := d.recorder.Record(t.Context(), tt.cb)
			if outcome != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && herald.ErrorCode(err) != tt.wantErr) {
				t.Errorf("Record = %q, %v; want %q with error code %q", outcome, err, tt.want, tt.wantErr)
			}
		})
	}
	if after := d.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d events", before, after)
	}
}

// A message id another provider recorded (an email's Message-ID) is not the gateway's to report.
func TestRecordMatchesOnlyTheGatewaysMessages(t *testing.T) {
	d := newRecorderDB(t)
	id := uuid.Must(uuid.NewV7()).String()
	_, err := events.NewLog(d.runtime).Append(t.Context(), id, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: "SMlookalike"})
	if err != nil {
		t.Fatal(err)
	}
	if outcome, err := d.recorder.Record(t.Context(), delivered("SMlookalike")); err != nil || outcome != receipts.OutcomeUnmatched {
		t.Errorf("Record = %q, %v; want unmatched", outcome, err)
	}
}

// Gateways retry, and may post the same report twice at once: one event, whoever wins.
func TestRecordConcurrentRepeatsRecordOnce(t *testing.T) {
	d := newRecorderDB(t)
	id := d.sentSMS(t, "SMrace")
	const n = 8
	outcomes := make([]receipts.Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i], errs[i] = d.recorder.Record(context.Background(), delivered("SMrace"))
		}()
	}
	wg.Wait()
	recorded := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Record %d: %v", i, errs[i])
		}
		if outcomes[i] == receipts.OutcomeRecorded {
			recorded++
		}
	}
	if recorded != 1 {
		t.Errorf("%d of %d concurrent reports recorded, want 1 (%v)", recorded, n, outcomes)
	}
	if got := len(d.stream(t, id)); got != 4 {
		t.Errorf("stream has %d events, want 4", got)
	}
}

// The lookup by message id goes through the partial index, not a scan of the log.
func TestMatchUsesTheIndex(t *testing.T) {
	d := newRecorderDB(t)
	d.sentSMS(t, "SMplan")
	conn, err := d.runtime.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), `EXPLAIN `+receipts.MatchSQL, "SMplan", "http-sms")
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "event_log_sent_provider_message_id_idx") {
		t.Errorf("the match does not use event_log_sent_provider_message_id_idx:\n%s", strings.Join(plan, "\n"))
	}
}

// processingSMS appends an SMS notification whose first attempt is open: the worker has the
// gateway's answer, or is waiting for it, and has not recorded it yet. It returns its id.
func (d *recorderDB) processingSMS(t *testing.T) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := events.NewLog(d.runtime).Append(t.Context(), id, 0, events.Metadata{Actor: "test", CorrelationID: "send-" + id},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100001", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// named is cb as posted to the callback URL that names notification id.
func named(id string, cb receipts.StatusCallback) receipts.StatusCallback {
	cb.NotificationID = id
	return cb
}

// A report that overtakes the worker's NotificationSent waits for it, and is recorded after it.
func TestRecordNamedWaitsForSent(t *testing.T) {
	d := newRecorderDB(t)
	id := d.processingSMS(t)
	seen := make(chan herald.Status, 1)
	receipts.OnEarly(d.recorder, func(n herald.Notification) {
		select {
		case seen <- n.Status:
		default:
		}
	})
	type result struct {
		outcome receipts.Outcome
		err     error
	}
	done := make(chan result, 1)
	go func() {
		outcome, err := d.recorder.Record(context.Background(), named(id, delivered("SMearly1")))
		done <- result{outcome, err}
	}()

	select {
	case st := <-seen:
		if st != herald.StatusProcessing {
			t.Fatalf("the recorder waited on a notification %s, want processing", st)
		}
	case r := <-done:
		t.Fatalf("Record = %q, %v before the notification was sent; want it to wait", r.outcome, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the recorder never waited for the notification to be sent")
	}
	// The worker records the send while the callback waits.
	if _, err := events.NewLog(d.runtime).Append(t.Context(), id, 2, events.Metadata{Actor: "worker", CorrelationID: "send-" + id},
		&events.NotificationSent{Attempt: 1, Provider: "http-sms", ProviderMessageID: "SMearly1"}); err != nil {
		t.Fatal(err)
	}

	var r result
	select {
	case r = <-done:
	case <-time.After(receipts.DefaultWait + 5*time.Second):
		t.Fatal("Record did not return after the notification was sent")
	}
	if r.err != nil || r.outcome != receipts.OutcomeRecorded {
		t.Fatalf("Record = %q, %v; want recorded", r.outcome, r.err)
	}
	recs := d.stream(t, id)
	var types []string
	for _, rec := range recs {
		types = append(types, fmt.Sprintf("%s v%d", rec.Type, rec.Version))
	}
	want := []string{"NotificationQueued v1", "NotificationProcessing v2", "NotificationSent v3", "NotificationDelivered v4"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// A report whose notification is not recorded sent within the wait is answered early, and
// nothing is written: the gateway may post it again.
func TestRecordNamedGivesUpAtTheBound(t *testing.T) {
	d := newRecorderDB(t)
	id := d.processingSMS(t)
	const wait = 300 * time.Millisecond
	d.recorder.WithWait(wait)
	var polls atomic.Int32
	receipts.OnEarly(d.recorder, func(herald.Notification) { polls.Add(1) })
	before := d.logSize(t)

	start := time.Now()
	outcome, err := d.recorder.Record(t.Context(), named(id, delivered("SMnever")))
	took := time.Since(start)
	if err != nil || outcome != receipts.OutcomeEarly {
		t.Fatalf("Record = %q, %v; want early", outcome, err)
	}
	if took < wait || took > wait+3*time.Second {
		t.Errorf("Record answered after %s, want just past its wait of %s", took, wait)
	}
	if polls.Load() < 2 {
		t.Errorf("the stream was read %d times while waiting, want it read again and again", polls.Load())
	}
	if after := d.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d events", before, after)
	}
}

// What a named report finds when its notification is not a sent SMS of this message: nothing is
// written, whatever it finds.
func TestRecordNamedWritesNothing(t *testing.T) {
	d := newRecorderDB(t)
	sent := d.sentSMS(t, "SMrecorded")
	log := events.NewLog(d.runtime)
	failed := uuid.Must(uuid.NewV7()).String()
	if _, err := log.Append(t.Context(), failed, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100001", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationFailed{Attempt: 1, Provider: "http-sms", Reason: events.ReasonAttemptsExhausted, Error: "timeout"}); err != nil {
		t.Fatal(err)
	}
	// Cancelled between attempts: the gateway may have taken the attempt whose answer was lost.
	cancelled := uuid.Must(uuid.NewV7()).String()
	if _, err := log.Append(t.Context(), cancelled, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+15550100002", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "http-sms", Error: "timeout"},
		&events.NotificationCancelled{Actor: "apikey:shop"}); err != nil {
		t.Fatal(err)
	}
	email := uuid.Must(uuid.NewV7()).String()
	if _, err := log.Append(t.Context(), email, 0, events.Metadata{},
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "a@example.com", Content: "hi", Body: "hi"},
		&events.NotificationProcessing{Attempt: 1},
		&events.NotificationSent{Attempt: 1, Provider: "smtp", ProviderMessageID: "SMlookalike"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cb      receipts.StatusCallback
		want    receipts.Outcome
		wantErr string
	}{
		// Another message of the same notification: the one recorded tells its story.
		{"sent as another message", named(sent, delivered("SMother")), receipts.OutcomeMismatched, ""},
		{"failed", named(failed, delivered("SMfailed")), receipts.OutcomeUnmatched, ""},
		{"cancelled", named(cancelled, delivered("SMcancelled")), receipts.OutcomeUnmatched, ""},
		{"an email", named(email, delivered("SMlookalike")), receipts.OutcomeUnmatched, ""},
		{"unknown notification", named(uuid.Must(uuid.NewV7()).String(), delivered("SMrecorded")), receipts.OutcomeUnmatched, ""},
		{"intermediate", named(sent, receipts.StatusCallback{MessageSID: "SMrecorded", MessageStatus: "sent"}), receipts.OutcomeIntermediate, ""},
		{"not a notification id", named("SMrecorded'; --", delivered("SMrecorded")), "", herald.EINVALID},
	}
	before := d.logSize(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome, err := d.recorder.Record(t.Context(), tt.cb)
			if outcome != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && herald.ErrorCode(err) != tt.wantErr) {
				t.Errorf("Record = %q, %v; want %q with error code %q", outcome, err, tt.want, tt.wantErr)
			}
		})
	}
	if after := d.logSize(t); after != before {
		t.Errorf("the log grew from %d to %d events", before, after)
	}
}

// A named report is matched by its notification, without the message id lookup: even one whose
// gateway answer carried no readable message id is recorded.
func TestRecordNamedWithoutRecordedMessageID(t *testing.T) {
	d := newRecorderDB(t)
	id := d.sentSMS(t, "")
	outcome, err := d.recorder.Record(t.Context(), named(id, delivered("SMunread")))
	if err != nil || outcome != receipts.OutcomeRecorded {
		t.Fatalf("Record = %q, %v; want recorded", outcome, err)
	}
	recs := d.stream(t, id)
	if last := recs[len(recs)-1]; last.Type != events.TypeNotificationDelivered || last.Version != 4 {
		t.Errorf("last event %s v%d, want NotificationDelivered v4", last.Type, last.Version)
	}
	// And once more: a duplicate.
	if outcome, err := d.recorder.Record(t.Context(), named(id, delivered("SMunread"))); err != nil || outcome != receipts.OutcomeDuplicate {
		t.Errorf("Record again = %q, %v; want duplicate", outcome, err)
	}
}
