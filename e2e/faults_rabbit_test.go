//go:build faults || scale

package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/heraldtest"
)

// rabbitNode is a RabbitMQ node of the fault suite's own, on loopback ports of its own. The suite
// drops its connections and stops and starts it, which it must never do to the machine's shared
// node: other suites use that one.
type rabbitNode struct {
	name     string // Erlang node name, herald-faults-<random>@localhost
	dir      string // its configuration, data and logs
	port     int    // AMQP
	mgmtPort int    // management API
	distPort int    // Erlang distribution
	// stopped is set once a test has stopped the node for good, so that the cleanup leaves it.
	stopped bool
}

// requireTool skips the test with a message naming what is missing, or fails it when
// HERALD_TEST_REQUIRE_SERVICES=1.
func requireTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if heraldtest.Required() {
		t.Fatalf("%s (HERALD_TEST_REQUIRE_SERVICES=1, so this is a failure)", msg)
	}
	t.Skipf("%s; skipping the fault suite (install rabbitmq-server, or set HERALD_TEST_REQUIRE_SERVICES=1 to fail instead)", msg)
}

// freePort returns a loopback port nobody listened on a moment ago, and that it has not returned
// before: nodes prepared one after another, and started later, must not be handed the same port.
func freePort(t *testing.T) int {
	t.Helper()
	givenPortsMu.Lock()
	defer givenPortsMu.Unlock()
	for {
		port, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !givenPorts[port] {
			givenPorts[port] = true
			return port
		}
	}
}

var (
	givenPortsMu sync.Mutex
	givenPorts   = map[int]bool{}
)

// startRabbitNode starts a RabbitMQ node in a temporary directory and waits until it takes AMQP
// connections and answers on its management API. It is stopped and removed when the test ends.
func startRabbitNode(t *testing.T) *rabbitNode {
	t.Helper()
	n := newRabbitNode(t, harness.RandomName("herald-faults-")+"@localhost", "")
	n.start(t)
	t.Logf("RabbitMQ node %s: AMQP on 127.0.0.1:%d, management on 127.0.0.1:%d, files in %s", n.name, n.port, n.mgmtPort, n.dir)
	return n
}

// newRabbitNode prepares the files of a RabbitMQ node named name, with extraConf added to its
// rabbitmq.conf, without starting it. It is stopped (unless the test stopped it for good) and
// removed when the test ends.
func newRabbitNode(t *testing.T, name, extraConf string) *rabbitNode {
	t.Helper()
	for _, tool := range []string{"rabbitmq-server", "rabbitmqctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireTool(t, "%s is not on PATH: the suite runs RabbitMQ nodes of its own", tool)
		}
	}
	// rabbitmq-server drops its privileges to the rabbitmq user, which must own the node's files.
	owner, err := user.Lookup("rabbitmq")
	if err != nil {
		requireTool(t, "no rabbitmq user to run a RabbitMQ node as: %v", err)
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)

	n := &rabbitNode{
		name:     name,
		port:     freePort(t),
		mgmtPort: freePort(t),
		distPort: freePort(t),
	}
	reapOrphans.Do(func() { reapOrphanRabbitNodes(t) })
	n.dir, err = os.MkdirTemp("", rabbitDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// The test process that owns the node: a later run stops the node if this one dies first.
	if err := os.WriteFile(filepath.Join(n.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nmanagement.tcp.port = %d\nmanagement.tcp.ip = 127.0.0.1\n", n.port, n.mgmtPort) + extraConf
	for _, f := range []struct{ name, content string }{
		{"rabbitmq.conf", conf},
		{"enabled_plugins", "[rabbitmq_management].\n"},
	} {
		if err := os.WriteFile(filepath.Join(n.dir, f.name), []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.Walk(n.dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
	if err != nil {
		_ = os.RemoveAll(n.dir)
		requireTool(t, "cannot hand %s to the rabbitmq user (the suite must run as root): %v", n.dir, err)
	}

	t.Cleanup(func() {
		if !n.stopped {
			if err := n.ctl("stop"); err != nil {
				t.Errorf("stop RabbitMQ node %s: %v", n.name, err)
				n.killByPIDFile(t)
			}
		}
		if t.Failed() {
			n.logTail(t, 40)
		}
		_ = os.RemoveAll(n.dir)
	})
	return n
}

// start runs rabbitmq-server -detached on the node's files and waits until the node is up.
func (n *rabbitNode) start(t *testing.T) {
	t.Helper()
	n.launch(t)
	n.waitUp(t)
	out, err := n.ctlOutput("eval", "erlang:system_info(time_correction).")
	if err != nil {
		t.Fatalf("RabbitMQ node %s: ask its time correction: %v", n.name, err)
	}
	if strings.TrimSpace(out) != "false" {
		t.Fatalf("RabbitMQ node %s runs with the Erlang VM's time correction (%q): it can abort mid-run; see erlArgs", n.name, strings.TrimSpace(out))
	}
}

// erlArgs starts the nodes' Erlang VM without time correction. With it, Erlang 25's VM aborts
// ("Monotonic time stepped backwards!") on some virtual machines whose clock it misreads, killing
// the node in the middle of a case; without it, Erlang's monotonic time is the operating system's,
// which does not step back. .ci/run starts the machine's own broker the same way.
const erlArgs = "+C multi_time_warp +c false"

// launch runs rabbitmq-server -detached on the node's files, which returns before the node is up.
func (n *rabbitNode) launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = append(n.baseEnv(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(n.dir, "feature_flags"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+erlArgs,
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rabbitmq-server -detached: %v\n%s", err, out)
	}
}

// waitUp waits until the node takes AMQP connections and answers on its management API.
func (n *rabbitNode) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := n.ping()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.logTail(t, 40)
			t.Fatalf("RabbitMQ node %s did not come up within 90s: %v", n.name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// ping checks that the node takes AMQP connections and answers on its management API.
func (n *rabbitNode) ping() error {
	conn, err := amqp091.DialConfig(n.amqpURL("/"), amqp091.Config{Dial: amqp091.DefaultDial(2 * time.Second)})
	if err != nil {
		return fmt.Errorf("AMQP: %w", err)
	}
	_ = conn.Close()
	return harness.RabbitAPI(context.Background(), n.apiURL(), http.MethodGet, "/api/overview", "", nil)
}

// down reports whether the node refuses AMQP connections.
func (n *rabbitNode) down() bool {
	conn, err := amqp091.DialConfig(n.amqpURL("/"), amqp091.Config{Dial: amqp091.DefaultDial(time.Second)})
	if err == nil {
		_ = conn.Close()
	}
	return err != nil
}

// restart stops the node (every connection to it drops and it refuses new ones), leaves it down
// for at least down, starts it again on the same files and waits until it is up. It returns when
// the stop began (connections drop at once) and when the node answered again.
//
// The whole node is stopped rather than only its application (rabbitmqctl stop_app/start_app):
// on this machine's RabbitMQ 3.10 a start_app after stop_app fails to listen again
// (eaddrinuse on the AMQP port) and leaves the node unusable.
func (n *rabbitNode) restart(t *testing.T, down time.Duration) (wentDown, cameBack time.Time) {
	t.Helper()
	wentDown = time.Now()
	if err := n.ctl("stop"); err != nil {
		t.Fatalf("stop RabbitMQ node %s: %v", n.name, err)
	}
	heraldtest.Eventually(t, 30*time.Second, "RabbitMQ to refuse connections", func() (bool, error) {
		return n.down(), nil
	})
	time.Sleep(down)
	n.start(t)
	return wentDown, time.Now()
}

// closeAllConnections drops every client connection to the node, in every vhost, as a broker
// that restarts its listeners or a network that resets them would. It returns how many were
// closed.
func (n *rabbitNode) closeAllConnections(t *testing.T) int {
	t.Helper()
	// Without --global, close_all_connections only closes the connections of vhost "/".
	out, err := n.ctlOutput("close_all_connections", "--global", "herald fault suite")
	if err != nil {
		t.Fatalf("rabbitmqctl close_all_connections: %v", err)
	}
	m := regexp.MustCompile(`Closed (\d+) connections?`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rabbitmqctl close_all_connections said %q; want how many connections it closed", out)
	}
	closed, _ := strconv.Atoi(m[1])
	return closed
}

// ctl runs rabbitmqctl against the node.
func (n *rabbitNode) ctl(args ...string) error {
	_, err := n.ctlOutput(args...)
	return err
}

// ctlOutput runs rabbitmqctl against the node and returns what it printed.
func (n *rabbitNode) ctlOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", n.name}, args...)...)
	// rabbitmqctl runs an Erlang VM of its own, which aborts as the nodes' did (see erlArgs).
	cmd.Env = append(n.baseEnv(), "RABBITMQ_CTL_ERL_ARGS="+erlArgs)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// baseEnv is the test's environment without RabbitMQ's variables, which would point the tools at
// another node.
func (n *rabbitNode) baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") {
			env = append(env, kv)
		}
	}
	return env
}

// killByPIDFile kills the node this suite started, when rabbitmqctl could not stop it.
func (n *rabbitNode) killByPIDFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(n.dir, "pid"))
	if err != nil {
		t.Logf("RabbitMQ node %s: no pid file to kill it by: %v", n.name, err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Logf("RabbitMQ node %s: pid file says %q", n.name, b)
		return
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Logf("RabbitMQ node %s: kill %d: %v", n.name, pid, err)
	}
}

// rabbitDirPrefix names the temporary directories of the suite's nodes.
const rabbitDirPrefix = "herald-rabbitmq-"

var reapOrphans sync.Once

// reapOrphanRabbitNodes stops the nodes a run that died left behind (killed by a timeout, its
// cleanups never ran): nodes whose owner process is gone. A node another run still owns is
// left alone, as is one whose pid no longer runs a node of that directory.
func reapOrphanRabbitNodes(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), rabbitDirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := readPID(filepath.Join(dir, "owner"))
		if err != nil || syscall.Kill(owner, 0) == nil {
			continue // not ours to judge, or its owner still runs
		}
		if pid, err := readPID(filepath.Join(dir, "pid")); err == nil {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.Contains(string(cmdline), dir) {
				t.Logf("stopping RabbitMQ node %d left behind by a run that died (%s)", pid, dir)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s holds no pid: %q", path, b)
	}
	return pid, nil
}

// logTail prints the end of the node's log.
func (n *rabbitNode) logTail(t *testing.T, lines int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "log", n.name+".log"))
	if err != nil {
		t.Logf("RabbitMQ node %s log: %v", n.name, err)
		return
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("RabbitMQ node %s: last %d lines of its log:\n%s", n.name, len(all), strings.Join(all, "\n"))
}

// amqpURL is the URL of vhost on the node, as guest (whom RabbitMQ lets in on loopback).
func (n *rabbitNode) amqpURL(vhost string) string {
	if vhost == "/" {
		vhost = ""
	}
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%s", n.port, vhost)
}

// newVHost creates a virtual host on the node for one test case, so that its queues are its own,
// and returns its AMQP URL. It is deleted when the test ends, if the node is up.
func (n *rabbitNode) newVHost(t *testing.T) string {
	t.Helper()
	return heraldtest.NewVHostAt(t, n.apiURL(), n.amqpURL("/"))
}

// apiURL is the base URL of the node's management API, as guest.
func (n *rabbitNode) apiURL() string {
	return fmt.Sprintf("http://guest:guest@127.0.0.1:%d", n.mgmtPort)
}
