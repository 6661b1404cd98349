package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file runs herald as a process, as a user would, for the tests that read everything it
// prints: the test binary runs main instead of the tests when heraldMainEnv is set.

// heraldMainEnv makes the test binary run main instead of the tests, so a test can run herald
// as a process and read everything it prints, as a user would.
const heraldMainEnv = "HERALD_TEST_RUN_MAIN"

// TestMain runs herald's main when a test started this binary as herald, the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(heraldMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// heraldProcess is one run of this package's main as a process.
type heraldProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer // stdout and stderr
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

func (h *heraldProcess) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.Write(b)
}

func (h *heraldProcess) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// spawnHerald runs herald with args and env, and none of the test's own HERALD_* variables.
func spawnHerald(t *testing.T, env map[string]string, args ...string) *heraldProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, heraldMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	h := &heraldProcess{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = h, h
	if err := cmd.Start(); err != nil {
		t.Fatalf("start herald %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-h.done
	})
	return h
}

// wait waits up to timeout for h to exit, killing it then; it reports whether h exited by itself.
func (h *heraldProcess) wait(timeout time.Duration) bool {
	select {
	case <-h.done:
		return true
	case <-time.After(timeout):
		_ = h.cmd.Process.Kill()
		<-h.done
		return false
	}
}

// execHerald runs herald to its end and returns what it printed and its exit code.
func execHerald(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	h := spawnHerald(t, env, args...)
	if !h.wait(90 * time.Second) {
		t.Errorf("herald %s did not exit within 90s", strings.Join(args, " "))
	}
	return h.output(), h.cmd.ProcessState.ExitCode()
}

// freeAddr is a local address nothing listens on yet, for a process to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
