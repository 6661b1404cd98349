package router_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/router"
)

// QueueDepths counts the ready messages of the queues that exist, and leaves out the others.
func TestQueueDepths(t *testing.T) {
	url := heraldtest.NewVHost(t)
	ctx := context.Background()
	depths, err := router.QueueDepths(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if len(depths) != 0 {
		t.Errorf("a vhost without queues has depths %v, want none", depths)
	}

	ch := heraldtest.AMQPChannel(t, url)
	for _, q := range []string{router.QueuePoison, router.QueueSMS} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := ch.PublishWithContext(ctx, "", router.QueuePoison, true, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.Eventually(t, 10*time.Second, "the poison queue to hold 2", func() (bool, error) {
		depths, err = router.QueueDepths(ctx, url)
		return err == nil && depths[router.QueuePoison] == 2, err
	})
	if d, ok := depths[router.QueueSMS]; !ok || d != 0 || len(depths) != 2 {
		t.Errorf("depths are %v, want %s 2 and %s 0 only", depths, router.QueuePoison, router.QueueSMS)
	}
}
