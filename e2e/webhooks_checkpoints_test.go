package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// receivedCheckpoints returns the checkpoints that arrived at r, in arrival order.
func (r *hookReceiver) receivedCheckpoints() []wire.WebhookCheckpointPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.WebhookCheckpointPayload(nil), r.checkpoints...)
}

// latestCheckpoint is the seq of the newest checkpoint in d's database, 0 before the first.
func latestCheckpoint(t *testing.T, d *deps) int64 {
	t.Helper()
	var seq int64
	if err := d.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(max(seq), 0) FROM checkpoints`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// Herald as an operator runs it, with a checkpoint key: an endpoint subscribed to
// checkpoint.signed receives each checkpoint the sealer signs, from the first, in seq order,
// each once, signed as a webhook, with an Ed25519 signature that verifies with the sealer's
// public key. While the endpoint is down the sealer goes on signing; back up, it gets every
// checkpoint it missed, in order.
func TestCheckpointWebhooksEndToEnd(t *testing.T) {
	d := newDeps(t)
	key := filepath.Join(t.TempDir(), "checkpoint.key")
	pub, err := ledger.GenerateKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	rcv := newHookReceiver(t)
	ep, secret, err := webhooks.NewEndpoints(d.DB.Pool, webhooks.Policy{AllowPrivate: true, AllowHTTP: true}).
		Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url(), EventTypes: []string{wire.WebhookCheckpointSigned}}, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"all"}, Env: map[string]string{
		"HERALD_CHECKPOINT_KEY":         key,
		"HERALD_CHECKPOINT_INTERVAL":    "200ms",
		"HERALD_WEBHOOK_ALLOW_PRIVATE":  "true",
		"HERALD_WEBHOOK_ALLOW_HTTP":     "true",
		"HERALD_WEBHOOK_POLL_INTERVAL":  "50ms",
		"HERALD_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms",
	}})

	waitCheckpoints := func(what string, atLeast int64) {
		t.Helper()
		heraldtest.Eventually(t, 30*time.Second, what, func() (bool, error) {
			got := rcv.receivedCheckpoints()
			return len(got) > 0 && got[len(got)-1].Data.Seq >= atLeast, fmt.Errorf("%d arrived", len(got))
		})
	}
	for i := range 2 {
		waitStatus(t, c.API, send(t, c.API, emailCase(i).req), "sent", deliveryTimeout)
		heraldtest.Eventually(t, 30*time.Second, "a checkpoint of the new events", func() (bool, error) {
			return latestCheckpoint(t, d) > int64(i), nil
		})
	}
	waitCheckpoints("the first two checkpoints", 2)
	// Delivery is at least once: a checkpoint whose answer is lost with the connection the
	// receiver closes is posted again. So the receiver goes down only once the log is sealed
	// to its end (nothing more to post) and the endpoint's offset is at the last checkpoint
	// (the dispatcher has every answer).
	heraldtest.Eventually(t, 30*time.Second, "the whole log sealed and taken by the endpoint", func() (bool, error) {
		var events, sealed, taken int64
		err := d.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM event_log),
			(SELECT coalesce(max(tree_size), 0) FROM checkpoints),
			(SELECT coalesce(checkpoint_seq, 0) FROM webhook_endpoints WHERE id = $1)`, ep.ID).Scan(&events, &sealed, &taken)
		if err != nil {
			return false, err
		}
		latest := latestCheckpoint(t, d)
		return sealed == events && taken == latest, fmt.Errorf("%d events, %d sealed, endpoint at checkpoint %d of %d", events, sealed, taken, latest)
	})

	rcv.down()
	before := latestCheckpoint(t, d)
	waitStatus(t, c.API, send(t, c.API, emailCase(2).req), "sent", deliveryTimeout)
	heraldtest.Eventually(t, 30*time.Second, "a checkpoint signed while the endpoint is down", func() (bool, error) {
		return latestCheckpoint(t, d) > before, nil
	})
	missed := latestCheckpoint(t, d)
	rcv.up()
	waitCheckpoints("the checkpoints signed while it was down", missed)

	got := rcv.receivedCheckpoints()
	for i, p := range got {
		if p.Data.Seq != int64(i+1) {
			t.Fatalf("arrival %d is checkpoint %d: want every checkpoint from 1, in order, once", i, p.Data.Seq)
		}
		cp, err := p.Data.Checkpoint()
		if err != nil {
			t.Fatalf("checkpoint %d: %v", p.Data.Seq, err)
		}
		if err := cp.VerifySignature(ledger.NewKeys(pub)); err != nil {
			t.Errorf("checkpoint %d: its signature does not verify with the sealer's key: %v", cp.Seq, err)
		}
	}
	stored, err := ledger.List(context.Background(), d.DB.Pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p.Data.Root != wire.NewCheckpoint(stored[i]).Root {
			t.Errorf("checkpoint %d arrived with root %s, the database holds %s", p.Data.Seq, p.Data.Root, wire.NewCheckpoint(stored[i]).Root)
		}
	}
	if _, dup, bad := rcv.arrivals(); dup != 0 || bad != 0 {
		t.Errorf("%d webhook-ids arrived twice, %d bad signatures", dup, bad)
	}
}
