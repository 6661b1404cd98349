package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/commands"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/tracing"
)

// RetryConfig is the exponential backoff between a notification's delivery attempts.
type RetryConfig struct {
	// MaxRetries bounds the retries of one delivery of a command. The deliverer's MaxAttempts,
	// counted in the log, decides when a notification fails; this is a backstop for errors that
	// are not delivery attempts (the database being away, say), after which the command goes back
	// to its queue.
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	// Jitter spreads each delay over ±Jitter of itself (0.2 = ±20%).
	Jitter float64
}

// WorkerConfig says what a worker process consumes and how.
type WorkerConfig struct {
	Channels []herald.Channel
	// Concurrency is the number of commands each channel handles at once in its normal lane, and
	// in its low lane.
	Concurrency int
	// HighConcurrency is the number each channel handles at once in its high lane; 0: as
	// Concurrency.
	HighConcurrency int
	Retry           RetryConfig
	// CloseTimeout bounds how long shutdown waits for attempts in flight.
	CloseTimeout time.Duration
	// Metrics, if set, receives watermill's handler and publisher metrics.
	Metrics prometheus.Registerer
	// Tracing opens a span for each attempt, continuing the trace the command's headers carry,
	// and stamps its context on the events the attempt appends.
	Tracing tracing.Tracing
}

// Workers consume SendNotification commands from the channels' queues and hand them to the
// deliverer, behind the middleware: correlation id → poison queue → retry → recoverer. The
// deliverer bounds each attempt by its policy's timeout, after any wait for a rate limit.
type Workers struct {
	amqp      AMQPConfig
	cfg       WorkerConfig
	deliverer *handlers.Deliverer
	topology  *Topology
	logger    *slog.Logger
	worker    string
}

// NewWorkers returns workers for cfg; worker names them in the log ("host/pid"). topology must
// be running.
func NewWorkers(amqpCfg AMQPConfig, cfg WorkerConfig, deliverer *handlers.Deliverer, topology *Topology, worker string, logger *slog.Logger) *Workers {
	return &Workers{amqp: amqpCfg, cfg: cfg, deliverer: deliverer, topology: topology, worker: worker, logger: logger}
}

// Run consumes until ctx is done, then lets the attempts in flight finish (up to CloseTimeout)
// and acknowledges their commands, or parks and acknowledges them; commands no handler took stay
// in, or go back to, their queues, and so do those of attempts still running at CloseTimeout.
func (w *Workers) Run(ctx context.Context) error {
	wlog := watermillLogger(w.logger)
	var conn *amqp.ConnectionWrapper
	wait := backoff{min: 200 * time.Millisecond, max: 5 * time.Second}
	// One configuration for every try: its dial hook starts each dial after the node the last
	// one reached, so a node that takes TCP but fails the AMQP handshake is passed over on the
	// next try, and when watermill-amqp dials again after the connection drops.
	uri, dialCfg, _, err := w.amqp.amqpDialConfig("herald worker", nil)
	if err != nil {
		return err
	}
	for conn == nil {
		if _, err := w.topology.Wait(ctx); err != nil {
			return nil
		}
		if conn, err = amqp.NewConnection(amqp.ConnectionConfig{AmqpURI: uri, AmqpConfig: &dialCfg}, wlog); err != nil {
			w.logger.WarnContext(ctx, "workers cannot connect to RabbitMQ, retrying", "error", err)
			wait.sleep(ctx)
		}
	}
	defer conn.Close()
	// Parking checks, as the relay does, that RabbitMQ routed the command to the poison queue: a
	// command parked nowhere would be acknowledged and lost.
	poisonPub := newRoutedPublisher(w.amqp, w.amqp.PublishChannels, "herald worker poison", w.topology)
	defer poisonPub.Close()

	// A park the poison queue cannot take yet is held, not requeued at once (see park_hold.go).
	held := &holdingPublisher{pub: poisonPub, done: ctx.Done(), limit: parkHoldLimit, logger: w.logger}

	// A stop hands back at once the commands no handler has taken: each consumer has a
	// subscriber of its own (on the one connection), closed as soon as it has nothing in hand.
	// The attempts in flight finish, within the close timeout, and their commands are
	// acknowledged (or parked and acknowledged) before their consumer's subscriber closes; see
	// drain.go. Closed here too, before the connection, in case the router never closes it.
	amqpCfg := w.amqp.watermill()
	drained := newDrainingSubscribers(func() (message.Subscriber, error) {
		sub, err := amqp.NewSubscriberWithConnection(amqpCfg, wlog, conn)
		if err != nil {
			return nil, fmt.Errorf("workers: subscriber: %w", err)
		}
		return sub, nil
	}, w.cfg.closeTimeout())
	defer drained.Close()
	router, err := w.router(drained, held, wlog)
	if err != nil {
		return err
	}
	return runUntilDone(ctx, router.Run, router.Close)
}

// closeTimeout is how long a stop waits for the attempts in flight: CloseTimeout, or watermill's
// router's default.
func (c WorkerConfig) closeTimeout() time.Duration {
	if c.CloseTimeout > 0 {
		return c.CloseTimeout
	}
	return 30 * time.Second
}

// router builds the watermill router of the workers: metrics, the middleware chain (outermost
// first: correlation id, poison queue, restore context, retry, park undecodable,
// recoverer) and one handler per channel and lane, each on its own queue, all consuming through
// sub.
func (w *Workers) router(sub *drainingSubscriber, poisonPub message.Publisher, wlog watermill.LoggerAdapter) (*message.Router, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: w.cfg.closeTimeout()}, wlog)
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	if w.cfg.Metrics != nil {
		addMetrics(router, w.cfg.Metrics)
	}

	poison, err := middleware.PoisonQueueWithFilter(&detachedPublisher{poisonPub}, QueuePoison, handlers.Final)
	if err != nil {
		return nil, fmt.Errorf("workers: poison queue: %w", err)
	}
	router.AddMiddleware(
		middleware.CorrelationID,
		poison,
		restoreContext,
		RetryMiddleware(w.cfg.Retry, wlog),
		parkUndecodable,
		middleware.Recoverer,
	)

	// Each lane has a command processor of its own, consuming its queues with consumers of its
	// own: a lane's backlog never holds the consumers of another. The processors share the one
	// draining subscriber (and its connection); a cqrs processor takes one handler per command,
	// hence one per lane.
	for _, p := range herald.Priorities {
		concurrent := &fanIn{sub: sub, n: max(1, w.cfg.concurrency(p))}
		processor, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
			GenerateSubscribeTopic: func(params cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
				h, ok := params.CommandHandler.(channelHandler)
				if !ok {
					return "", fmt.Errorf("handler %s has no channel", params.CommandHandler.HandlerName())
				}
				return QueueOf(h.channel, p)
			},
			SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
				return concurrent, nil
			},
			Marshaler: commandMarshaler,
			Logger:    wlog,
		})
		if err != nil {
			return nil, fmt.Errorf("workers: command processor: %w", err)
		}
		for _, c := range w.cfg.Channels {
			// One handler per channel and lane; its name is stable, it shows in logs, metrics and
			// parked messages: send_email for the normal lane, send_email_high beside it.
			h := channelHandler{
				CommandHandler: cqrs.NewCommandHandler(HandlerName(c, p), w.handle(c, p)),
				channel:        c,
			}
			if _, err := processor.AddHandler(h); err != nil {
				return nil, fmt.Errorf("workers: %s %s handler: %w", c, p, err)
			}
		}
	}
	return router, nil
}

type channelHandler struct {
	cqrs.CommandHandler
	channel herald.Channel
}

// handle returns the handler of channel c's queue: it refuses a command of another channel for
// good (it would be delivered through the wrong provider) and hands the rest to the deliverer,
// with metadata naming the request, the command and this worker.
func (w *Workers) handle(c herald.Channel, p herald.Priority) func(context.Context, *commands.SendNotification) error {
	queue, _ := QueueOf(c, p)
	name := HandlerName(c, p)
	return func(ctx context.Context, cmd *commands.SendNotification) (err error) {
		if cmd.Channel != c {
			return fmt.Errorf("%w: %s command on the %s queue", handlers.ErrFinal, cmd.Channel, c)
		}
		msg := cqrs.OriginalMessageFromCtx(ctx)
		ctx, span := startAttempt(ctx, w.cfg.Tracing, msg, queue, name, cmd)
		md := events.Metadata{
			CorrelationID: middleware.MessageCorrelationID(msg),
			CausationID:   msg.UUID,
			Actor:         "worker:" + w.worker,
			Trace:         w.cfg.Tracing.Carrier(ctx),
		}
		// Deferred: a panic in the deliverer, recovered by the router, still ends the span, as
		// a failed attempt.
		returned := false
		defer func() {
			if !returned {
				err = errAttemptPanicked
			}
			endAttempt(span, err)
		}()
		err = w.deliverer.Deliver(ctx, *cmd, md)
		returned = true
		return err
	}
}

// RetryMiddleware returns watermill's Retry middleware set up so that only errors worth retrying
// are retried (handlers.Final errors go straight on, to the poison queue; handlers.Requeue ones
// straight back to their queue, unparked, since the poison queue passes them by), with the delays r
// configures: InitialInterval, then ×Multiplier each time up to MaxInterval, ±Jitter.
//
// Retry calls NextBackOff once more whenever ShouldRetry is set, so each delay it sleeps is two
// steps of the backoff: the delays grow by Multiplier² from InitialInterval·Multiplier. Giving it
// √Multiplier and InitialInterval/√Multiplier yields the delays configured.
func RetryMiddleware(r RetryConfig, wlog watermill.LoggerAdapter) message.HandlerMiddleware {
	root := math.Sqrt(r.Multiplier)
	return middleware.Retry{
		MaxRetries:          r.MaxRetries,
		InitialInterval:     time.Duration(float64(r.InitialInterval) / root),
		MaxInterval:         r.MaxInterval,
		Multiplier:          root,
		RandomizationFactor: r.Jitter,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !handlers.Final(p.Err) && !handlers.Requeue(p.Err) },
		// Each try gets the whole attempt timeout, not what the previous try left of it.
		ResetContextOnRetry: true,
		Logger:              wlog,
	}.Middleware
}

// restoreContext gives the message its own context back once the middleware inside are done:
// Retry leaves its cancelled context on the message, and the poison queue, outside, would
// publish with it and fail.
func restoreContext(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		out, err := h(msg)
		msg.SetContext(ctx)
		return out, err
	}
}

// detachedPublisher publishes even when the message's context is cancelled, as it is during
// shutdown: a command that failed for good is parked, not handed back to be failed again.
type detachedPublisher struct {
	message.Publisher
}

func (p *detachedPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		m.SetContext(context.WithoutCancel(m.Context()))
	}
	return p.Publisher.Publish(topic, msgs...)
}

// parkUndecodable sends commands that cannot be read to the poison queue: retrying them cannot
// help, and dropping them would lose a notification silently.
func parkUndecodable(h message.HandlerFunc) message.HandlerFunc {
	want := commandMarshaler.Name(commands.SendNotification{})
	return func(msg *message.Message) ([]*message.Message, error) {
		if name := commandMarshaler.NameFromMessage(msg); name != want {
			return nil, fmt.Errorf("%w: message %s is a %q, not a %s", handlers.ErrFinal, msg.UUID, name, want)
		}
		var cmd commands.SendNotification
		if err := json.Unmarshal(msg.Payload, &cmd); err != nil {
			return nil, fmt.Errorf("%w: message %s: %w", handlers.ErrFinal, msg.UUID, err)
		}
		if cmd.NotificationID == "" {
			return nil, fmt.Errorf("%w: message %s names no notification", handlers.ErrFinal, msg.UUID)
		}
		return h(msg)
	}
}

// fanIn subscribes n times to each topic and merges the subscriptions: an AMQP subscription
// handles one message at a time, so n of them handle n at once.
type fanIn struct {
	sub *drainingSubscriber
	n   int
}

// Subscribe opens n subscriptions to topic and merges them into one channel, closed when all of
// them are.
//
// The draining subscriber hands messages out with contexts that outlive the router's stop; each
// message goes on to the handler with a context that ends with ctx, as a stop ends it: an attempt
// not yet started gives up and Retry stops waiting, while the deliverer lets a send under way
// finish. A message taken after ctx ended is nacked, so the broker hands it to another consumer.
func (f *fanIn) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	var wg sync.WaitGroup
	for i := 0; i < f.n; i++ {
		in, err := f.sub.Subscribe(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("subscribe %s (%d of %d): %w", topic, i+1, f.n, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range in {
				handOn(ctx, msg, out)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// handOn hands msg to out with a context that also ends with ctx, and returns once msg is
// settled.
func handOn(ctx context.Context, msg *message.Message, out chan<- *message.Message) {
	if ctx.Err() != nil {
		msg.Nack()
		return
	}
	msgCtx, cancel := context.WithCancel(msg.Context())
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	msg.SetContext(msgCtx)
	select {
	case out <- msg:
	case <-ctx.Done():
		// Never acknowledged: the broker hands it to another consumer.
		msg.Nack()
		return
	}
	select {
	case <-msg.Acked():
	case <-msg.Nacked():
	}
}

// Close stops the subscriptions in order (see drainingSubscriber); every lane's processor shares
// the one draining subscriber, so each Close waits for the same close.
func (f *fanIn) Close() error { return f.sub.Close() }
