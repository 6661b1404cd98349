package router

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// AbandonedMax is how many channel operations given up on may wait on a publisher's connection
// before the publisher gives the connection up.
const AbandonedMax = abandonedMax

// NewPublisher returns the publisher the relay and the workers' park publish through, to the
// RabbitMQ of cfg with up to size channels; topology says when its queues are ready.
func NewPublisher(cfg AMQPConfig, size int, topology *Topology) message.Publisher {
	return newRoutedPublisher(cfg, size, "herald test publisher", topology)
}

// LockPoison takes q's lock on conn, as every look does, for tests that hold it from a
// connection they control.
func LockPoison(ctx context.Context, q *PoisonQueue, conn *amqp091.Connection) (release func() error, err error) {
	return q.lock(ctx, conn)
}

// ElectionName returns the application_name of the projector's lock sessions, so that a test
// can stand in for a former session of the same projector.
func ElectionName(p *Projector) string { return p.election }

// GroupLockKey is groupLockKey, for tests that take a consumer group's lock themselves.
var GroupLockKey = groupLockKey

// SetPoisonRetry sets how often t declares the poison queue again while its node is down; call
// it before t runs.
func SetPoisonRetry(t *Topology, retry time.Duration) { t.poisonRetry = retry }

// SetPoisonDown makes t hold the poison queue's node for down, as when a park finds it gone.
func SetPoisonDown(t *Topology, err error) { t.poisonDown(err) }

// SetPoisonUp makes t hold the poison queue for declared again, as watch does once its node is
// back.
func SetPoisonUp(t *Topology) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.poisonErr = nil
}

// NodesOf returns what c's URL is read as: the URL amqp091 is handed, the nodes' addresses, and
// the connect and handshake bounds of each node.
func NodesOf(url string) (uri string, addrs []string, connect, handshake time.Duration, err error) {
	n, err := parseNodes(url)
	if err != nil {
		return "", nil, 0, 0, err
	}
	connect, handshake = n.timeouts()
	return n.uri, n.addrs, connect, handshake, nil
}

// NodeTLSCertificates is how many client certificates the TLS configuration of url's nodes
// presents, read from its files now.
func NodeTLSCertificates(url string) (int, error) {
	n, err := parseNodes(url)
	if err != nil {
		return 0, err
	}
	cfg, err := nodeTLS(n.first)
	if err != nil {
		return 0, err
	}
	return len(cfg.Certificates), nil
}
