package router

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rabbitmq/amqp091-go"
)

// QueueDepths counts the messages ready in every work queue and in the poison queue, by name,
// for an operator's overview. It opens a connection of its own for the look, bounded by ctx (or
// 5 s), and leaves out a queue that does not exist.
func QueueDepths(ctx context.Context, url string) (map[string]int, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName("herald console")
	conn, err := amqp091.DialConfig(url, amqp091.Config{
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Deadline: deadline}
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				err = c.SetDeadline(deadline)
			}
			return c, err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("queue depths: connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	out := map[string]int{}
	for _, q := range append(WorkQueues(), QueuePoison) {
		// A passive declaration of a missing queue closes its channel: one channel per queue.
		ch, err := conn.Channel()
		if err != nil {
			return nil, fmt.Errorf("queue depths: open channel: %w", err)
		}
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		_ = ch.Close()
		if err == nil {
			out[q] = st.Messages
		}
	}
	return out, nil
}
