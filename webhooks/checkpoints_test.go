package webhooks_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/webhooks"
	"github.com/herald-notify/herald/wire"
)

// checkpointReceiver is an endpoint that takes checkpoint.signed: it verifies each request's
// webhook signature, keeps the checkpoints in arrival order (and accepts, without keeping them,
// the notification events it may take too), and can go down (connections refused) and come back
// on the same address.
type checkpointReceiver struct {
	t      *testing.T
	addr   string
	secret webhooks.Secret

	mu      sync.Mutex
	srv     *http.Server
	arrived []wire.WebhookCheckpointPayload
	ids     []string
	badSigs int
}

func newCheckpointReceiver(t *testing.T) *checkpointReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &checkpointReceiver{t: t, addr: l.Addr().String()}
	r.serveOn(l)
	t.Cleanup(r.down)
	return r
}

func (r *checkpointReceiver) url() string { return "http://" + r.addr + "/checkpoints" }

func (r *checkpointReceiver) serveOn(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

func (r *checkpointReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *checkpointReceiver) up() {
	r.t.Helper()
	var l net.Listener
	heraldtest.Eventually(r.t, 10*time.Second, "the receiver's address to be free again", func() (bool, error) {
		var err error
		l, err = net.Listen("tcp", r.addr)
		return err == nil, err
	})
	r.serveOn(l)
}

func (r *checkpointReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := webhooks.Verify(req.Header, body, 5*time.Minute, time.Now(), r.secret); err != nil {
		r.badSigs++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var p wire.WebhookCheckpointPayload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("checkpoint webhook %s: %v", body, err)
	}
	if p.Type != wire.WebhookCheckpointSigned {
		// A notification event, to an endpoint that takes some too.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.arrived = append(r.arrived, p)
	r.ids = append(r.ids, req.Header.Get(webhooks.HeaderID))
	w.WriteHeader(http.StatusNoContent)
}

func (r *checkpointReceiver) got() ([]wire.WebhookCheckpointPayload, []string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.WebhookCheckpointPayload(nil), r.arrived...), append([]string(nil), r.ids...), r.badSigs
}

// seal appends a notification's story and has the sealer sign a checkpoint of the log up to it.
func (s setup) seal(t *testing.T, sealer *ledger.Sealer, events int) *ledger.Checkpoint {
	t.Helper()
	s.sendStory(t)
	heraldtest.WaitLogVisible(t, s.db, events)
	cp, _, err := sealer.Seal(context.Background())
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if cp == nil {
		t.Fatal("the sealer made no checkpoint of a log that grew")
	}
	return cp
}

// waitCheckpointSeq waits until the endpoint's shape shows its checkpoint offset at seq.
func (s setup) waitCheckpointSeq(t *testing.T, endpoint string, seq int64) {
	t.Helper()
	heraldtest.Eventually(t, 10*time.Second, fmt.Sprintf("the endpoint's checkpoint offset at %d", seq), func() (bool, error) {
		e, err := s.eps.Get(context.Background(), endpoint)
		if err != nil {
			return false, err
		}
		w := webhooks.WireEndpoint(e, nil)
		return w.CheckpointSeq != nil && *w.CheckpointSeq == seq, fmt.Errorf("checkpoint_seq %v", w.CheckpointSeq)
	})
}

// An endpoint subscribed to checkpoint.signed receives each checkpoint the sealer signs, in seq
// order, with a valid webhook signature and a checkpoint whose Ed25519 signature verifies; and
// no notification event. While it is down the checkpoints wait (the failed posts are counted),
// and once it is back they arrive, in order, each once. An endpoint taking every notification
// event gets no checkpoint.
func TestCheckpointsArriveSignedInOrder(t *testing.T) {
	s := newSetup(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer := ledger.NewSealer(s.pool, priv)
	rcv := newCheckpointReceiver(t)
	ep, secret, err := s.eps.Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url(),
		EventTypes: []string{wire.WebhookCheckpointSigned}}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	rcv.secret = secret
	all := newReceiver(t)
	allEp := s.register(t, all)
	reg := prometheus.NewRegistry()
	s.dispatcher(t, "d1", webhooks.SenderConfig{Metrics: webhooks.NewMetrics(reg),
		Schedule: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}})

	var sealed []*ledger.Checkpoint
	sealed = append(sealed, s.seal(t, sealer, 5), s.seal(t, sealer, 10))
	heraldtest.Eventually(t, 30*time.Second, "both checkpoints at the endpoint", func() (bool, error) {
		got, _, _ := rcv.got()
		return len(got) >= 2, nil
	})
	// Delivery is at least once: an answer lost with the connection the receiver closes has the
	// checkpoint posted again. So the receiver goes down only once the dispatcher has its answer.
	s.waitCheckpointSeq(t, ep.ID, sealed[1].Seq)

	rcv.down()
	sealed = append(sealed, s.seal(t, sealer, 15), s.seal(t, sealer, 20))
	heraldtest.Eventually(t, 30*time.Second, "posts to the endpoint while it is down to fail", func() (bool, error) {
		return webhookDeliveries(t, reg, ep.ID, "failed") >= 2, nil
	})
	rcv.up()
	heraldtest.Eventually(t, 30*time.Second, "the checkpoints made while it was down", func() (bool, error) {
		got, _, _ := rcv.got()
		return len(got) >= 4, nil
	})

	got, ids, bad := rcv.got()
	if bad != 0 {
		t.Errorf("%d requests had a bad webhook signature", bad)
	}
	if len(got) != len(sealed) {
		t.Fatalf("%d checkpoints arrived, want %d, each once", len(got), len(sealed))
	}
	for i, p := range got {
		want := sealed[i]
		if p.Type != wire.WebhookCheckpointSigned || p.Data.Seq != want.Seq || p.Data.TreeSize != want.TreeSize {
			t.Errorf("arrival %d: %s seq %d tree %d, want checkpoint.signed seq %d tree %d", i, p.Type, p.Data.Seq, p.Data.TreeSize, want.Seq, want.TreeSize)
		}
		if ids[i] != p.MessageID() {
			t.Errorf("arrival %d: webhook-id %s, want %s", i, ids[i], p.MessageID())
		}
		cp, err := p.Data.Checkpoint()
		if err != nil {
			t.Errorf("arrival %d: %v", i, err)
			continue
		}
		if err := cp.VerifySignature(ledger.NewKeys(pub)); err != nil {
			t.Errorf("checkpoint %d as posted: its signature does not verify: %v", cp.Seq, err)
		}
	}
	for _, a := range all.got() {
		if a.payload.Type == wire.WebhookCheckpointSigned {
			t.Errorf("the endpoint taking all notification events got a checkpoint")
		}
	}
	// The offset follows the endpoint's answer by moments; the endpoint's shape shows it.
	s.waitCheckpointSeq(t, ep.ID, sealed[len(sealed)-1].Seq)
	e, err := s.eps.Get(context.Background(), allEp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if seq := webhooks.WireEndpoint(e, nil).CheckpointSeq; seq != nil {
		t.Errorf("an endpoint not taking checkpoints shows checkpoint_seq %d", *seq)
	}
}

// webhookDeliveries sums herald_webhook_deliveries_total in reg for endpoint and outcome, over
// every trigger.
func webhookDeliveries(t *testing.T, reg *prometheus.Registry, endpoint, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "herald_webhook_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["endpoint"] == endpoint && labels["outcome"] == outcome {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// checkpoint.signed is taken only when named: "all" is every notification event type and no
// checkpoint, and an endpoint naming only checkpoint.signed takes no notification event.
func TestCheckpointSignedIsOptIn(t *testing.T) {
	types, err := webhooks.ParseEventTypes(" checkpoint.signed, NotificationSent", "events")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{events.TypeNotificationSent, wire.WebhookCheckpointSigned}; !slices.Equal(types, want) {
		t.Errorf("parsed %v, want %v", types, want)
	}
	for _, c := range []struct {
		types                   []string
		notifications, checkpts bool
	}{
		{nil, true, false},
		{[]string{wire.WebhookCheckpointSigned}, false, true},
		{[]string{events.TypeNotificationSent, wire.WebhookCheckpointSigned}, true, true},
	} {
		e := webhooks.Endpoint{EventTypes: c.types}
		if got := e.Takes(events.TypeNotificationSent); got != c.notifications {
			t.Errorf("%v takes NotificationSent: %v, want %v", c.types, got, c.notifications)
		}
		if got := e.TakesCheckpoints(); got != c.checkpts {
			t.Errorf("%v takes checkpoints: %v, want %v", c.types, got, c.checkpts)
		}
	}
}

// An endpoint that subscribes to checkpoint.signed by a change receives the checkpoints signed
// after the change, not those signed before it while it did not take them.
func TestSubscribingLaterStartsAtTheLatestCheckpoint(t *testing.T) {
	s := newSetup(t)
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer := ledger.NewSealer(s.pool, priv)
	rcv := newCheckpointReceiver(t)
	ep, secret, err := s.eps.Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url(),
		EventTypes: []string{events.TypeNotificationSent}}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	rcv.secret = secret
	s.seal(t, sealer, 5)
	types := []string{events.TypeNotificationSent, wire.WebhookCheckpointSigned}
	if _, err := s.eps.Update(context.Background(), ep.ID, webhooks.Change{EventTypes: &types}, "tester"); err != nil {
		t.Fatal(err)
	}
	s.dispatcher(t, "d1", webhooks.SenderConfig{})
	second := s.seal(t, sealer, 10)
	heraldtest.Eventually(t, 30*time.Second, "the checkpoint signed after the change", func() (bool, error) {
		got, _, _ := rcv.got()
		return len(got) >= 1, nil
	})
	got, _, _ := rcv.got()
	if len(got) != 1 || got[0].Data.Seq != second.Seq {
		var seqs []int64
		for _, p := range got {
			seqs = append(seqs, p.Data.Seq)
		}
		t.Errorf("checkpoints %v arrived, want only %d, signed after the endpoint subscribed", seqs, second.Seq)
	}
}
