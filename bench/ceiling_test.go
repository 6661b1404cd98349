package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/heraldtest"
)

// TestAMQPCeilingConsumesWhatItPublished measures a short ceiling on a vhost of its own: every
// confirmed message is consumed, the rates follow from the counts, and the queue is gone after.
func TestAMQPCeilingConsumesWhatItPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes to RabbitMQ for a second; skipped with -short")
	}
	amqpURL := heraldtest.NewVHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := measureAMQP(ctx, amqpURL, 2, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("measureAMQP: %v", err)
	}
	if got.Publishers != 2 || got.ConfirmWindow != confirmWindow || got.Prefetch != ceilingPrefetch || got.MessageBytes != len(ceilingMessage) {
		t.Errorf("settings %+v, want 2 publishers and the ceiling's window, prefetch and message", got)
	}
	if got.Published == 0 || got.Consumed != got.Published {
		t.Errorf("published %d, consumed %d; want some, all consumed", got.Published, got.Consumed)
	}
	if got.PublishedPerSec <= 0 || got.ConsumedPerSec <= 0 || got.PublishSeconds > 1 {
		t.Errorf("rates %+v: want both above 0, publishing within the 300ms and a confirm's wait", got)
	}
	if queueExists(t, amqpURL, ceilingQueue) {
		t.Errorf("the ceiling's queue %s is still there", ceilingQueue)
	}
}

// queueExists asks the broker whether queue is declared in amqpURL's vhost.
func queueExists(t *testing.T, amqpURL, queue string) bool {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	return true
}

// TestPostgresCeilingCommitsFromEachClientCount measures a short ceiling in a scratch database:
// one figure per client count, in order, and the scratch table dropped after.
func TestPostgresCeilingCommitsFromEachClientCount(t *testing.T) {
	if testing.Short() {
		t.Skip("commits to PostgreSQL for a second; skipped with -short")
	}
	db := heraldtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := measurePostgres(ctx, db.Pool, []int{1, 3}, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("measurePostgres: %v", err)
	}
	if len(got) != 2 || got[0].Clients != 1 || got[1].Clients != 3 {
		t.Fatalf("figures %+v, want one for 1 client then one for 3", got)
	}
	for _, p := range got {
		if p.Inserts == 0 || p.Seconds < 0.2 || p.InsertsPer != float64(p.Inserts)/p.Seconds {
			t.Errorf("%+v: want inserts over at least 200ms, and their rate", p)
		}
	}
	var table *string
	if err := db.Pool.QueryRow(ctx, "SELECT to_regclass($1)::text", ceilingTable).Scan(&table); err != nil {
		t.Fatal(err)
	}
	if table != nil {
		t.Errorf("the ceiling's table %s is still there", *table)
	}
}
