package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/postgres"
)

// The skeleton is the design's own ceiling: the durable steps one notification takes through
// Herald, written plainly with pgx and amqp091 and no framework, run at full speed on the same
// services before the load. Herald's delivered rate is read as a share of the skeleton's: what
// Herald costs beyond the work its guarantees need.
//
// Per notification, as Herald does it:
//
//  1. accept: the first event and the outbox row in one transaction (one round trip, a batch);
//  2. relay: the outbox read past what was forwarded, the command published persistent and
//     mandatory to a quorum queue with a confirm, the rows removed, in one transaction a batch;
//  3. worker: the command consumed with a manual ack, the attempt's start appended (checked
//     against the stream's version by the unique key), the message handed to the loopback SMTP
//     or SMS sink, the outcome appended, the command acknowledged;
//  4. projector: the log read in the order consumers read it (by transaction, then position,
//     only past every open transaction), the status row upserted and a history row inserted
//     per event, the offset advanced, in one transaction a batch.
//
// What it leaves out is what is not durable work: validation, rendering, authentication,
// metrics, and the reads a worker makes to decide.

// SkeletonReport is what the skeleton did.
type SkeletonReport struct {
	Seconds float64 `json:"seconds"`
	// Clients accepted at once, closed loop; Workers consumed at once.
	Clients int `json:"clients"`
	Workers int `json:"workers"`
	// Accepted in Seconds; Delivered of them reached the sinks, the last after DeliverSeconds.
	Accepted       int64   `json:"accepted"`
	Delivered      int64   `json:"delivered"`
	DeliverSeconds float64 `json:"deliver_seconds"`
	// DeliveredPerSec is Delivered over DeliverSeconds: the skeleton's end-to-end rate.
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	Error           string  `json:"error,omitempty"`
}

// Names of the skeleton's tables and queue, in the run's scratch database and vhost.
const (
	skelEvents  = "herald_bench_skel_events"
	skelOutbox  = "herald_bench_skel_outbox"
	skelStatus  = "herald_bench_skel_status"
	skelHistory = "herald_bench_skel_history"
	skelOffset  = "herald_bench_skel_offset"
	skelQueue   = "herald_bench_skeleton"
)

// skelWorkers is how many commands the skeleton delivers at once: Herald's default, 8 per
// channel, for its two channels.
const skelWorkers = 16

// skelBody is the data of the skeleton's first event: a text notification as the load sends.
const skelBody = `{"channel":"email","recipient":"b1@bench.herald.test","subject":"Bench","content":"Hello {{.name}}","body":"Hello Ada, this is notification 1 of the bench.","variables":{"name":"Ada"}}`

// skeleton is one run of the skeleton.
type skeleton struct {
	pool     *pgxpool.Pool
	conn     *amqp.Connection
	admin    *amqp.Channel
	sinks    *sinks
	smtpAddr string
	smsURL   string
	clients  int

	accepted  atomic.Int64
	delivered atomic.Int64
	start     time.Time
	lastSeen  atomic.Int64 // nanoseconds since start of the last delivery

	errMu sync.Mutex
	err   error
	// idle, if set, is called with the notifications delivered once they are all delivered and
	// projected, before the skeleton stops.
	idle func(delivered int64)
}

func (s *skeleton) fail(err error) {
	s.errMu.Lock()
	s.err = errors.Join(s.err, err)
	s.errMu.Unlock()
}

// measureSkeleton runs the skeleton for d with clients accepting at once, then waits up to drain
// for what it accepted to be delivered, and removes its tables and queue. With a meter, it also
// returns what the run cost the services, counted once its tables and queue exist and before
// they are removed.
func measureSkeleton(ctx context.Context, databaseURL, amqpURL string, clients int, d, drain time.Duration, meter *costMeter) (SkeletonReport, *CostFigures, error) {
	s, err := openSkeleton(ctx, databaseURL, amqpURL, clients)
	if err != nil {
		return SkeletonReport{Clients: clients, Workers: skelWorkers}, nil, err
	}
	defer s.close(context.WithoutCancel(ctx))
	if meter == nil {
		out, err := s.run(ctx, d, drain)
		return out, nil, err
	}
	before, idle, beforeErr := meter.settled(ctx)
	var cost *CostFigures
	// Counted while the skeleton is still up, idle: a closed channel's last counts may never
	// reach the management API.
	s.idle = func(delivered int64) {
		cost = countCost(ctx, meter, before, beforeErr, delivered, 0)
		cost.withIdle(idle, false)
	}
	out, err := s.run(ctx, d, drain)
	return out, cost, err
}

// openSkeleton connects, creates the skeleton's tables and queue, and starts its sinks.
func openSkeleton(ctx context.Context, databaseURL, amqpURL string, clients int) (_ *skeleton, err error) {
	s := &skeleton{clients: clients}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()
	if s.pool, err = postgres.Connect(ctx, databaseURL, postgres.Options{MaxConns: clients + skelWorkers + 4, AppName: "herald-bench-skeleton"}); err != nil {
		return nil, fmt.Errorf("skeleton: %w", err)
	}
	if err := createSkeletonTables(ctx, s.pool); err != nil {
		return nil, err
	}
	if s.conn, err = amqp.Dial(amqpURL); err != nil {
		return nil, fmt.Errorf("skeleton: connect: %w", err)
	}
	if s.admin, err = s.conn.Channel(); err != nil {
		return nil, fmt.Errorf("skeleton: channel: %w", err)
	}
	if _, err := s.admin.QueueDeclare(skelQueue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return nil, fmt.Errorf("skeleton: declare %s: %w", skelQueue, err)
	}
	if s.sinks, err = startSinks(func(int, string) {
		s.delivered.Add(1)
		s.lastSeen.Store(int64(time.Since(s.start)))
	}); err != nil {
		return nil, err
	}
	host, port := s.sinks.smtpAddr()
	s.smtpAddr, s.smsURL = host+":"+strconv.Itoa(port), s.sinks.smsURL()
	return s, nil
}

// close removes the skeleton's tables and queue and stops its sinks.
func (s *skeleton) close(ctx context.Context) {
	if s.sinks != nil {
		s.sinks.close()
	}
	if s.admin != nil {
		_, _ = s.admin.QueueDelete(skelQueue, false, false, false)
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	if s.pool != nil {
		dropSkeletonTables(ctx, s.pool)
		s.pool.Close()
	}
}

// run accepts for d from s.clients clients at once, relaying, delivering and projecting
// meanwhile, then waits up to drain for what it accepted to be delivered.
func (s *skeleton) run(ctx context.Context, d, drain time.Duration) (SkeletonReport, error) {
	out := SkeletonReport{Clients: s.clients, Workers: skelWorkers}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var background sync.WaitGroup
	for _, f := range []func(context.Context){s.relay, s.project} {
		background.Add(1)
		go func() { defer background.Done(); f(runCtx) }()
	}
	for range skelWorkers {
		background.Add(1)
		go func() { defer background.Done(); s.work(runCtx) }()
	}

	s.start = time.Now()
	var accepting sync.WaitGroup
	deadline := s.start.Add(d)
	for c := range s.clients {
		accepting.Add(1)
		go func() { defer accepting.Done(); s.accept(ctx, c, deadline) }()
	}
	accepting.Wait()
	out.Seconds = time.Since(s.start).Seconds()
	out.Accepted = s.accepted.Load()
	wait := time.Now().Add(drain)
	for s.delivered.Load() < out.Accepted && time.Now().Before(wait) && ctx.Err() == nil && s.firstErr() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	// The read models catch up before the stop, so that they can be checked.
	for !s.projected(ctx, out.Accepted) && time.Now().Before(wait) && ctx.Err() == nil && s.firstErr() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if s.idle != nil {
		s.idle(s.delivered.Load())
	}
	stop()
	background.Wait()
	out.Delivered = s.delivered.Load()
	out.DeliverSeconds = time.Duration(s.lastSeen.Load()).Seconds()
	if out.DeliverSeconds > 0 {
		out.DeliveredPerSec = float64(out.Delivered) / out.DeliverSeconds
	}
	if err := s.firstErr(); err != nil {
		return out, err
	}
	if out.Delivered < out.Accepted && ctx.Err() == nil {
		return out, fmt.Errorf("skeleton: %d of %d accepted were not delivered within %s", out.Accepted-out.Delivered, out.Accepted, drain)
	}
	return out, ctx.Err()
}

// projected reports whether the history holds all three events of n notifications.
func (s *skeleton) projected(ctx context.Context, n int64) bool {
	var rows int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+skelHistory).Scan(&rows); err != nil {
		return false
	}
	return rows >= 3*n
}

func (s *skeleton) firstErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// createSkeletonTables creates the skeleton's log, outbox, read models and offset: the event
// log as Herald's (a position, a stream version unique per stream, the appending transaction's
// id, JSONB data and metadata), the rest as small as Herald's.
func createSkeletonTables(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `
CREATE TABLE `+skelEvents+` (
	position BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL, stream_id UUID NOT NULL, version BIGINT NOT NULL,
	type TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), data JSONB NOT NULL,
	metadata JSONB NOT NULL DEFAULT '{}', txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
	UNIQUE (stream_id, version));
CREATE INDEX ON `+skelEvents+` (txid, position);
CREATE TABLE `+skelOutbox+` (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL);
CREATE TABLE `+skelStatus+` (stream_id UUID PRIMARY KEY, status TEXT NOT NULL, version BIGINT NOT NULL,
	position BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE `+skelHistory+` (stream_id UUID NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL,
	type TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (stream_id, version));
CREATE TABLE `+skelOffset+` (id INT PRIMARY KEY, txid xid8 NOT NULL, position BIGINT NOT NULL);
INSERT INTO `+skelOffset+` VALUES (1, '0', 0);`)
	if err != nil {
		return fmt.Errorf("skeleton: create tables: %w", err)
	}
	return nil
}

func dropSkeletonTables(ctx context.Context, pool *pgxpool.Pool) {
	_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+strings.Join([]string{skelEvents, skelOutbox, skelStatus, skelHistory, skelOffset}, ", "))
}

// accept appends first events with their outbox rows, one transaction each, until deadline.
func (s *skeleton) accept(ctx context.Context, client int, deadline time.Time) {
	for i := client; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		id := uuid.New()
		channel := "email"
		if i%2 == 1 {
			channel = "sms"
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO `+skelEvents+` (event_id, stream_id, version, type, data, metadata) VALUES ($1, $2, 1, 'NotificationQueued', $3, $4)`,
			uuid.New(), id, skelBody, `{"actor":"apikey:bench","correlation_id":"`+id.String()+`"}`)
		b.Queue(`INSERT INTO `+skelOutbox+` (payload) VALUES ($1)`, id.String()+" "+channel)
		if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("skeleton: accept: %w", err))
			}
			return
		}
		s.accepted.Add(1)
	}
}

// relay forwards the outbox to the queue: rows read past what others hold, published with
// confirms, removed, in one transaction per batch.
func (s *skeleton) relay(ctx context.Context) {
	ch, err := s.conn.Channel()
	if err != nil {
		s.fail(fmt.Errorf("skeleton: relay channel: %w", err))
		return
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		s.fail(fmt.Errorf("skeleton: confirm mode: %w", err))
		return
	}
	for ctx.Err() == nil {
		n, err := s.relayBatch(ctx, ch)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("skeleton: relay: %w", err))
			}
			return
		}
		if n == 0 {
			sleep(ctx, 2*time.Millisecond)
		}
	}
}

func (s *skeleton) relayBatch(ctx context.Context, ch *amqp.Channel) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT id, payload FROM `+skelOutbox+` ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return 0, err
	}
	var (
		ids      []int64
		payloads []string
	)
	var (
		id      int64
		payload string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &payload}, func() error {
		ids, payloads = append(ids, id), append(payloads, payload)
		return nil
	}); err != nil {
		return 0, err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(payloads))
	for _, p := range payloads {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", skelQueue, true, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "text/plain", Body: []byte(p)})
		if err != nil {
			return 0, err
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, errors.New("the broker refused a command (nack)")
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM `+skelOutbox+` WHERE id = ANY($1)`, ids); err != nil {
			return 0, err
		}
	}
	return len(ids), tx.Commit(ctx)
}

// work consumes commands one at a time: start appended, the message handed over, the outcome
// appended, the command acknowledged.
func (s *skeleton) work(ctx context.Context) {
	ch, err := s.conn.Channel()
	if err != nil {
		s.fail(fmt.Errorf("skeleton: worker channel: %w", err))
		return
	}
	defer ch.Close()
	if err := ch.Qos(1, 0, false); err != nil {
		s.fail(fmt.Errorf("skeleton: qos: %w", err))
		return
	}
	deliveries, err := ch.ConsumeWithContext(ctx, skelQueue, "", false, false, false, false, nil)
	if err != nil {
		s.fail(fmt.Errorf("skeleton: consume: %w", err))
		return
	}
	p := &skelProviders{smtpAddr: s.smtpAddr, smsURL: s.smsURL, http: &http.Client{Timeout: 20 * time.Second}}
	defer p.close()
	for m := range deliveries {
		if err := s.deliver(ctx, p, string(m.Body)); err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("skeleton: deliver: %w", err))
			}
			return
		}
		if err := m.Ack(false); err != nil {
			s.fail(fmt.Errorf("skeleton: ack: %w", err))
			return
		}
	}
}

func (s *skeleton) deliver(ctx context.Context, p *skelProviders, command string) error {
	id, channel, _ := strings.Cut(command, " ")
	appendEvent := func(version int, typ, data string) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO `+skelEvents+` (event_id, stream_id, version, type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6)`,
			uuid.New(), id, version, typ, data, `{"actor":"worker:bench","correlation_id":"`+id+`"}`)
		return err
	}
	if err := appendEvent(2, "NotificationProcessing", `{"attempt":1}`); err != nil {
		return err
	}
	provider, err := p.send(channel, id)
	if err != nil {
		return err
	}
	return appendEvent(3, "NotificationSent", `{"attempt":1,"provider":"`+provider+`","provider_message_id":"`+id+`"}`)
}

// skelProviders are one worker's connections to the sinks: an SMTP session kept open between
// messages, as Herald's SMTP provider keeps one, and an HTTP client with keep-alive.
type skelProviders struct {
	smtpAddr string
	smsURL   string
	smtp     *smtp.Client
	http     *http.Client
}

func (p *skelProviders) send(channel, id string) (string, error) {
	if channel == "sms" {
		form := url.Values{"To": {"+15550000001"}, "From": {smsFrom}, "Body": {"Hello Ada, this is notification 1 of the bench."}}
		req, err := http.NewRequest(http.MethodPost, p.smsURL+"/2010-04-01/Accounts/"+smsAccountSID+"/Messages.json", strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.SetBasicAuth(smsAccountSID, smsAuthToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("I-Twilio-Idempotency-Token", id)
		resp, err := p.http.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("sms sink answered %s", resp.Status)
		}
		return "http-sms", nil
	}
	if p.smtp == nil {
		c, err := smtp.Dial(p.smtpAddr)
		if err != nil {
			return "", err
		}
		p.smtp = c
	}
	msg := "From: bench@bench.herald.test\r\nTo: b1@bench.herald.test\r\nSubject: Bench\r\n" +
		delivery.HeaderNotificationID + ": " + id + "\r\nMessage-ID: <" + id + "@bench.herald.test>\r\n\r\n" +
		"Hello Ada, this is notification 1 of the bench.\r\n"
	if err := p.smtp.Mail("bench@bench.herald.test"); err != nil {
		return "", err
	}
	if err := p.smtp.Rcpt("b1@bench.herald.test"); err != nil {
		return "", err
	}
	w, err := p.smtp.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return "smtp", nil
}

func (p *skelProviders) close() {
	if p.smtp != nil {
		_ = p.smtp.Quit()
	}
}

// project keeps the status and history read models: the log read as a consumer reads it, in
// batches of up to 500, each applied with the offset in one transaction.
func (s *skeleton) project(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.projectBatch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("skeleton: project: %w", err))
			}
			return
		}
		if n == 0 {
			sleep(ctx, 2*time.Millisecond)
		}
	}
}

func (s *skeleton) projectBatch(ctx context.Context) (int, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `
WITH o AS (SELECT txid, position FROM `+skelOffset+` WHERE id = 1 FOR UPDATE)
SELECT e.position, e.txid::text, e.stream_id, e.version, e.type, e.at, e.data, e.metadata FROM `+skelEvents+` e
WHERE (e.txid, e.position) > ((SELECT txid FROM o), (SELECT position FROM o))
	AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.txid, e.position LIMIT 500`)
	if err != nil {
		return 0, err
	}
	var (
		positions, versions []int64
		streams             []uuid.UUID
		types               []string
		ats                 []time.Time
		lastTxid            string
	)
	var (
		position, version int64
		txid, typ         string
		stream            uuid.UUID
		at                time.Time
		data, meta        []byte
	)
	if _, err := pgx.ForEachRow(rows, []any{&position, &txid, &stream, &version, &typ, &at, &data, &meta}, func() error {
		// The read models keep none of the data, but a consumer reads it and decodes it.
		if len(data) == 0 || len(meta) == 0 {
			return errors.New("an event without data")
		}
		positions, versions, streams, types, ats = append(positions, position), append(versions, version),
			append(streams, stream), append(types, typ), append(ats, at)
		lastTxid = txid
		return nil
	}); err != nil {
		return 0, err
	}
	if len(positions) == 0 {
		return 0, nil
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO `+skelStatus+` (stream_id, status, version, position, updated_at)
SELECT DISTINCT ON (s) s, t, v, p, a FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[]) AS u(s, t, v, p, a)
ORDER BY s, v DESC
ON CONFLICT (stream_id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version,
	position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
WHERE `+skelStatus+`.version < EXCLUDED.version`, streams, types, versions, positions, ats)
	b.Queue(`INSERT INTO `+skelHistory+` (stream_id, version, position, type, at)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[])
ON CONFLICT DO NOTHING`, streams, versions, positions, types, ats)
	b.Queue(`UPDATE `+skelOffset+` SET txid = $1::xid8, position = $2 WHERE id = 1`, lastTxid, positions[len(positions)-1])
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	return len(positions), tx.Commit(ctx)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
