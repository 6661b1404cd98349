//go:build scale

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/projections"
)

// TestScale is Herald's scale-out suite: Herald as it runs on several machines, simulated on
// loopback. A three-node RabbitMQ cluster (quorum queues replicated on every node) and a
// PostgreSQL primary with a synchronous streaming standby, of the suite's own; two serve
// processes taking the load in turn, two workers, a projector and a standby projector, every
// one of them given the servers as multi-host URLs. Under the fault suite's load, one case loses
// a server of each kind, and holds Herald to the fault suite's promises (see TestFaults). Each
// case prints
//
//	<case>: accepted=N sent=N failed=N lost=0 duplicates=D
//
// Run it with
//
//	go test -tags scale -count=1 -v -timeout 25m -run '^TestScale$' ./e2e/
func TestScale(t *testing.T) {
	start := time.Now()
	pg := startPostgresPair(t)
	t.Logf("PostgreSQL pair up in %s", time.Since(start).Round(100*time.Millisecond))
	rabbits := startRabbitCluster(t, 3)
	t.Logf("servers up in %s", time.Since(start).Round(100*time.Millisecond))
	// The PostgreSQL case first: it needs the whole RabbitMQ cluster no more than the other
	// needs the standby, and a lost RabbitMQ node stays lost.
	cases := []struct {
		name string
		run  func(t *testing.T, pg *pgPair, rabbits []*rabbitNode, name string)
	}{
		{"postgres_failover", scalePostgresFailover},
		{"rabbitmq_node_lost", scaleRabbitNodeLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tc.run(t, pg, rabbits, tc.name)
			t.Logf("%s took %s", tc.name, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// startRabbitCluster starts n RabbitMQ nodes that form one cluster. They find one another
// through peer discovery (classic_config: each node's configuration lists them all) rather than
// rabbitmqctl join_cluster, which needs stop_app and start_app, and on this machine's RabbitMQ
// 3.10 a start_app after stop_app fails to listen again (see rabbitNode.restart). The first node
// starts alone; the others start together and join it.
func startRabbitCluster(t *testing.T, n int) []*rabbitNode {
	t.Helper()
	prefix := harness.RandomName("herald-scale-")
	var names []string
	discovery := "cluster_formation.peer_discovery_backend = classic_config\n"
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%d@localhost", prefix, i+1))
		discovery += fmt.Sprintf("cluster_formation.classic_config.nodes.%d = %s\n", i+1, names[i])
	}
	nodes := make([]*rabbitNode, n)
	for i := range n {
		nodes[i] = newRabbitNode(t, names[i], discovery)
	}
	nodes[0].start(t)
	for _, node := range nodes[1:] {
		node.launch(t)
	}
	for _, node := range nodes[1:] {
		node.waitUp(t)
	}
	heraldtest.Eventually(t, 60*time.Second, fmt.Sprintf("the %d RabbitMQ nodes to form one cluster", n), func() (bool, error) {
		running, err := nodes[0].runningNodes()
		return len(running) == n, fmt.Errorf("running nodes %v: %v", running, err)
	})
	for _, node := range nodes {
		t.Logf("RabbitMQ node %s: AMQP on 127.0.0.1:%d, management on 127.0.0.1:%d", node.name, node.port, node.mgmtPort)
	}
	return nodes
}

// runningNodes lists the cluster's running nodes, as node n sees them.
func (n *rabbitNode) runningNodes() ([]string, error) {
	out, err := n.ctlOutput("cluster_status", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var status struct {
		Running []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &status); err != nil {
		return nil, fmt.Errorf("read cluster_status: %w", err)
	}
	return status.Running, nil
}

// scaleCluster is one case's Herald on the suite's servers: its own database on the pair, its
// own vhost on the cluster, and the fault suite's machinery around them.
type scaleCluster struct {
	*faultCluster
	apis []string
}

// newScaleCluster creates a case's database (through the multi-host URL: on whichever server is
// the primary) and vhost, and starts its six processes, each given every server.
func newScaleCluster(t *testing.T, pg *pgPair, rabbits []*rabbitNode) *scaleCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := harness.CreateDatabase(ctx, pg.adminURL(), harness.DatabaseOptions{
		Prefix: "herald_scale_", Migrate: true, RuntimeRole: true, MaxConns: 10, AppName: "herald-test",
	})
	if err != nil {
		t.Fatalf("create the case's database: %v", err)
	}
	// The servers go with the suite; only the pool is the case's to close.
	t.Cleanup(db.Pool.Close)
	var alive []*rabbitNode
	for _, r := range rabbits {
		if !r.stopped {
			alive = append(alive, r)
		}
	}
	vhost := alive[0].newVHost(t)
	d := &deps{
		DB:      db,
		AMQPURL: clusterURL(t, vhost, rabbits),
		SMTP:    deliverytest.NewSMTPSink(t),
		SMS:     deliverytest.NewSMSSink(t),
	}
	if _, d.Token, err = apikeys.NewStore(db.Pool).Create(ctx, "scale", herald.Scopes, "scale"); err != nil {
		t.Fatalf("create an API key: %v", err)
	}
	c := &scaleCluster{faultCluster: &faultCluster{
		deps:     d,
		settings: faultSettings{MaxAttempts: 6, Concurrency: 4},
		env: map[string]string{
			"HERALD_DELIVERY_TIMEOUT": "2s",
			// A worker retries recording an attempt's outcome for the lease less the timeout;
			// past that the attempt is abandoned and its message sent again. The default
			// distance is 30 s. The fault suite's 5 s lease leaves 3 s, less than a failover
			// takes on this loaded machine: in one run of four, an outcome whose commit waited
			// on the old primary until it stopped was given up on, and its email went twice.
			"HERALD_ATTEMPT_LEASE":          "32s",
			"HERALD_RETRY_INITIAL_INTERVAL": "50ms",
			"HERALD_RETRY_MAX_INTERVAL":     "1s",
			"HERALD_WORKER_CONCURRENCY":     "4",
			"HERALD_PROJECTOR_BATCH_SIZE":   "100",
			"HERALD_RATE_LIMIT":             "0",
		},
	}}
	for _, p := range c.start(t, "serve", "serve", "worker", "worker", "projector", "projector") {
		if p.Command == "serve" {
			c.apis = append(c.apis, p.URL)
		}
	}
	return c
}

// clusterURL is the vhost's URL naming every node of the cluster, as HERALD_AMQP_URL takes it.
func clusterURL(t *testing.T, vhostURL string, rabbits []*rabbitNode) string {
	t.Helper()
	u, err := url.Parse(vhostURL)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, r := range rabbits {
		node := *u
		node.Host = fmt.Sprintf("127.0.0.1:%d", r.port)
		urls = append(urls, node.String())
	}
	return strings.Join(urls, ",")
}

// lookThrough points the suite's own looks at the queues (which dial one node) at node r. The
// processes have their URL already.
func (c *scaleCluster) lookThrough(t *testing.T, r *rabbitNode) {
	t.Helper()
	c.AMQPURL = clusterURL(t, strings.Split(c.AMQPURL, ",")[0], []*rabbitNode{r})
}

// scalePostgresFailover promotes the standby and stops the primary under load. Requests caught by
// the failover may be refused (5xx: not accepted, and the client knows); every accepted
// notification was committed on the standby too (synchronous replication), so none is lost:
// every process reconnects through its multi-host URL to the new primary, the projector or its
// standby takes the consumer groups again there, and everything ends sent.
func scalePostgresFailover(t *testing.T, pg *pgPair, rabbits []*rabbitNode, name string) {
	const n = 300
	c := newScaleCluster(t, pg, rabbits)
	c.delayAll(n, 50*time.Millisecond)

	l := startLoadOn(c.apis, n, 15*time.Millisecond)
	l.waitIssued(n / 3)
	began, done := pg.failover(t)
	t.Logf("standby promoted and primary stopped at request %d, in %s", l.issued.Load(), done.Sub(began).Round(time.Millisecond))
	l.wait(t)
	// The suite's own pool held connections to the old primary.
	c.DB.Pool.Reset()
	c.lookThrough(t, rabbits[0])

	r := c.settle(t, l, 120*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(true))
	var refusedAfter time.Duration
	for _, a := range l.acceptances() {
		if a.answered.After(done) && refusedAfter == 0 {
			refusedAfter = a.answered.Sub(done)
		}
	}
	t.Logf("%s: the first notification accepted by the new primary was answered %s after the old one stopped", name, refusedAfter.Round(time.Millisecond))
	// Both projectors lost their lock sessions with the old primary; one of them must hold every
	// consumer group again on the new one (settle's read-model check shows it applies them).
	active := 0
	for _, p := range c.procs {
		if p.Command == "projector" {
			active += logged(p, "consumer group active")
		}
	}
	if groups := len(projections.All()); active < 2*groups {
		r.problem("the projectors took consumer groups %d times, want %d: once before the failover and once after", active, 2*groups)
	}
	if inRecovery(t, c) {
		r.problem("the database answers from a server in recovery: the suite's pool is not on the new primary")
	}
	r.wantAllSent("a failover must not fail any")
	r.check(t)
	c.shutdownAll(t)
}

// inRecovery reports whether the server the case's pool is connected to is a standby.
func inRecovery(t *testing.T, c *scaleCluster) bool {
	t.Helper()
	var recovery bool
	if err := c.DB.Pool.QueryRow(context.Background(), `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
		t.Fatalf("ask the primary whether it is in recovery: %v", err)
	}
	return recovery
}

// scaleRabbitNodeLost kills rabbits[0] under load (SIGKILL, as a machine that dies: every
// connection to it drops at once): the first node of every process's URL, so the one holding
// their first connections, the poison queue (a classic queue, on the node it was declared on)
// and the work queues' leaders. The quorum queues, replicated on all three nodes, elect new
// leaders among the two left; every process reconnects to the next node of its URL; commands
// unacknowledged at the loss are redelivered, unconfirmed ones published again, and nothing is
// sent twice (a redelivered command whose notification is sent is acknowledged without sending).
// A few notifications fail for good while the node is down: their commands cannot be parked
// then, and must wait in their work queue, not be lost, until the node is back. Every
// notification must end final while the node is still down; the node is then started again,
// and the failed ones' commands must end parked.
func scaleRabbitNodeLost(t *testing.T, pg *pgPair, rabbits []*rabbitNode, name string) {
	const n = 300
	c := newScaleCluster(t, pg, rabbits)
	c.delayAll(n, 50*time.Millisecond)
	// Issued after the kill (at n/3): refused for good at the first attempt, so parked while
	// the poison queue's node is down.
	failing := []int{240, 260, 280}
	for _, i := range failing {
		c.SMTP.AlwaysFail(faultEmail(i), 550)
	}
	vhost := strings.TrimPrefix(mustParseURL(t, strings.Split(c.AMQPURL, ",")[0]).Path, "/")

	// Every work queue is replicated on every node.
	leaders := map[string]string{}
	for _, q := range workQueues {
		info := rabbitQueue(t, rabbits[0], vhost, q)
		if len(info.Members) != len(rabbits) {
			t.Errorf("queue %s has members %v, want all %d nodes", q, info.Members, len(rabbits))
		}
		leaders[q] = info.Leader
	}
	poisonNode := rabbitQueue(t, rabbits[0], vhost, queuePoison).Node
	lost := rabbits[0]
	t.Logf("queue leaders: %v; the poison queue is on %s", leaders, poisonNode)
	// The queues were declared through the first node of the URLs: the kill must take the
	// poison queue's node and leaders with it, or the case proves less than it says.
	if poisonNode != lost.name {
		t.Fatalf("the poison queue is on %s, not on the first node of the URLs %s", poisonNode, lost.name)
	}
	led := 0
	for _, leader := range leaders {
		if leader == lost.name {
			led++
		}
	}
	if led == 0 {
		t.Fatalf("the first node of the URLs %s leads none of the work queues (%v)", lost.name, leaders)
	}

	l := startLoadOn(c.apis, n, 15*time.Millisecond)
	l.waitIssued(n / 3)
	lost.stopped = true
	lost.killByPIDFile(t)
	killedAt, at := time.Now(), l.issued.Load()
	heraldtest.Eventually(t, 10*time.Second, "the lost node to refuse connections", func() (bool, error) {
		return lost.down(), nil
	})
	t.Logf("RabbitMQ node %s (the poison queue's, leader of %d work queues) killed with SIGKILL at request %d", lost.name, led, at)
	l.wait(t)

	var survivor *rabbitNode
	for _, r := range rabbits {
		if !r.stopped {
			survivor = r
			break
		}
	}
	c.lookThrough(t, survivor)
	accepted := len(l.acceptances())
	streams := c.waitFinal(t, accepted, 90*time.Second)
	open := 0
	for _, s := range streams {
		if !terminalEvents[s.last] {
			open++
		}
	}
	finalAfter := time.Since(killedAt)
	newLeader := rabbitQueue(t, survivor, vhost, queueEmail).Leader
	t.Logf("%s: with node %s down, every notification was final %s after the kill; queue %s is led by %s",
		name, lost.name, finalAfter.Round(100*time.Millisecond), queueEmail, newLeader)

	// The failing ones' commands could not be parked: none is in the poison queue yet.
	heldParks := 0
	for _, p := range c.procs {
		heldParks += logged(p, "holding a command to park until the poison queue is ready")
	}
	t.Logf("%s: %d parks held while the poison queue's node was down", name, heldParks)

	// Back, so that the held commands are parked; a node that was killed rejoins on its own.
	// Cleared first: a start that fails still leaves the node to the cleanup.
	lost.stopped = false
	lost.start(t)
	r := c.settle(t, l, 60*time.Second, faultBounds{})
	t.Logf("%s: %s", name, r.line(false))
	if open > 0 || len(streams) < accepted {
		r.problem("%d of %d notifications were not final while node %s was down", open+accepted-min(accepted, len(streams)), accepted, lost.name)
	}
	if newLeader == lost.name || newLeader == "" {
		r.problem("queue %s had no leader but the lost node (%q) while it was down", queueEmail, newLeader)
	}
	var reconnected, withoutPoison int
	for _, p := range c.procs {
		if logged(p, "RabbitMQ connection lost") > 0 {
			reconnected++
		}
		if logged(p, "the poison queue's RabbitMQ node is down; delivering without it until it is back") > 0 {
			withoutPoison++
		}
	}
	t.Logf("%s: %d of %d processes lost their RabbitMQ connection and found another node; %d delivered without the poison queue while its node was down",
		name, reconnected, len(c.procs), withoutPoison)
	if reconnected == 0 {
		r.problem("the first node of every URL was killed, yet no process said it lost RabbitMQ")
	}
	if withoutPoison == 0 {
		r.problem("the poison queue's node was killed, yet no process said it went on without it")
	}
	if heldParks == 0 {
		r.problem("%d notifications failed for good while the poison queue's node was down, yet no worker held a park", len(failing))
	}
	// settle checked the poison queue holds at least the failed notifications' commands.
	if r.failed != len(failing) {
		r.problem("%d notifications failed, want the %d whose recipient refuses them", r.failed, len(failing))
	}
	if r.sent != r.accepted+r.unconfirmed-r.failed || r.refused+r.unanswered > 0 {
		r.problem("%d sent, %d failed, %d refused, %d unanswered of %d requests: a lost RabbitMQ node must neither fail nor refuse anything", r.sent, r.failed, r.refused, r.unanswered, n)
	}
	r.check(t)
	c.shutdownAll(t)
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// queueInfo is what the management API says of where a queue lives: a quorum queue's leader and
// replicas, a classic queue's node.
type queueInfo struct {
	Leader  string   `json:"leader"`
	Members []string `json:"members"`
	Node    string   `json:"node"`
}

// rabbitQueue asks node r's management API about queue q of vhost.
func rabbitQueue(t *testing.T, r *rabbitNode, vhost, q string) queueInfo {
	t.Helper()
	var info queueInfo
	path := "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(q)
	if err := harness.RabbitAPI(context.Background(), r.apiURL(), http.MethodGet, path, "", &info); err != nil {
		t.Fatalf("ask RabbitMQ about queue %s: %v", q, err)
	}
	slices.Sort(info.Members)
	return info
}

func nodeNamed(rabbits []*rabbitNode, name string) *rabbitNode {
	for _, r := range rabbits {
		if r.name == name {
			return r
		}
	}
	return nil
}
