package webhooks_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-notify/herald/webhooks"
)

// local is the policy of a developer's machine, where test servers listen on loopback over http.
var local = webhooks.Policy{AllowPrivate: true, AllowHTTP: true}

// countingServer starts a loopback server that answers 200 and counts the requests it gets.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestPostToLoopbackOnlyWithAllowPrivate(t *testing.T) {
	type received struct {
		method, signature string
		body              []byte
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.Header.Get("Webhook-Signature"), body}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "thanks")
	}))
	t.Cleanup(srv.Close)
	header := http.Header{"Webhook-Signature": {"v1,c2lnbmF0dXJl"}, "Content-Type": {"application/json"}}
	payload := []byte(`{"type":"notification.sent"}`)

	_, err := webhooks.NewClient(webhooks.Policy{AllowHTTP: true}, webhooks.ClientOptions{}).
		Post(context.Background(), srv.URL, header, payload)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Post to %s without AllowPrivate: err = %v, want a loopback refusal", srv.URL, err)
	}
	if len(got) != 0 {
		t.Fatal("the refused POST reached the server")
	}

	answer, err := webhooks.NewClient(local, webhooks.ClientOptions{}).
		Post(context.Background(), srv.URL, header, payload)
	if err != nil {
		t.Fatalf("Post with AllowPrivate: %v", err)
	}
	if answer.Status != http.StatusAccepted || string(answer.Body) != "thanks" || answer.Duration <= 0 {
		t.Errorf("answer = %d %q in %v, want 202 \"thanks\" in a positive duration",
			answer.Status, answer.Body, answer.Duration)
	}
	r := <-got
	if r.method != http.MethodPost || r.signature != "v1,c2lnbmF0dXJl" || !bytes.Equal(r.body, payload) {
		t.Errorf("server got %s signature %q body %q, want POST with the header and payload",
			r.method, r.signature, r.body)
	}
}

// A name that resolves to loopback passes ValidateURL, which looks at literals only; the dialer
// refuses the address the name resolved to. A rebound DNS answer is caught the same way.
func TestPostRefusesNameResolvingToLoopbackAtConnect(t *testing.T) {
	srv, hits := countingServer(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	byName := "http://localhost:" + port + "/h"
	strict := webhooks.Policy{AllowHTTP: true}
	if _, err := webhooks.ValidateURL(byName, strict); err != nil {
		t.Fatalf("ValidateURL(%q) = %v, want the name accepted at registration", byName, err)
	}

	_, err := webhooks.NewClient(strict, webhooks.ClientOptions{}).Post(context.Background(), byName, nil, nil)
	var refused *webhooks.RefusedAddressError
	if !errors.As(err, &refused) {
		t.Fatalf("Post(%q) = %v, want a *RefusedAddressError", byName, err)
	}
	if !refused.Addr.IsLoopback() || !strings.Contains(err.Error(), refused.Addr.String()) {
		t.Errorf("refused %v (%q), want a loopback address named in the error", refused.Addr, err)
	}
	if hits.Load() != 0 {
		t.Errorf("server got %d requests, want 0", hits.Load())
	}

	answer, err := webhooks.NewClient(local, webhooks.ClientOptions{}).Post(context.Background(), byName, nil, nil)
	if err != nil || answer.Status != http.StatusOK {
		t.Fatalf("Post(%q) with AllowPrivate = %d, %v; want 200", byName, answer.Status, err)
	}
}

func TestPostDoesNotFollowRedirects(t *testing.T) {
	target, hits := countingServer(t)
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/elsewhere", http.StatusFound))
	t.Cleanup(redirector.Close)

	answer, err := webhooks.NewClient(local, webhooks.ClientOptions{}).Post(context.Background(), redirector.URL, nil, nil)
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	if answer.Status != http.StatusFound {
		t.Errorf("answer status = %d, want %d", answer.Status, http.StatusFound)
	}
	if hits.Load() != 0 {
		t.Errorf("redirect target got %d requests, want 0", hits.Load())
	}
}

// An endpoint that answers 10 MB gets the first MaxAnswerBytes read and its connection closed:
// the server's writes fail long before the end.
func TestPostKeepsOnlyAnswerPrefixAndStopsReading(t *testing.T) {
	const answerSize = 10 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
	written := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for n < answerSize {
			m, err := w.Write(chunk)
			n += m
			if err != nil {
				break
			}
		}
		written <- n
	}))
	t.Cleanup(srv.Close)

	answer, err := webhooks.NewClient(local, webhooks.ClientOptions{}).Post(context.Background(), srv.URL, nil, nil)
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	if want := chunk[:webhooks.DefaultMaxAnswerBytes]; !bytes.Equal(answer.Body, want) {
		t.Errorf("answer body is %d bytes, want the first %d of the answer", len(answer.Body), len(want))
	}
	select {
	case n := <-written:
		if n >= answerSize {
			t.Errorf("server wrote all %d bytes, want the client to stop reading early", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server still writing 10 s after Post returned: the client did not close the answer")
	}
}

func TestPostTimesOutOnSilentEndpoint(t *testing.T) {
	reached := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
		<-r.Context().Done() // never answer; return once the client gives up
	}))
	t.Cleanup(srv.Close)

	// Long enough for the connection and the request to reach the server on a loaded machine:
	// it is the answer that must time out.
	const timeout = time.Second
	start := time.Now()
	_, err := webhooks.NewClient(local, webhooks.ClientOptions{Timeout: timeout}).
		Post(context.Background(), srv.URL, nil, nil)
	elapsed := time.Since(start)

	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("Post = %v, want a timeout error", err)
	}
	if elapsed < timeout || elapsed > 5*time.Second {
		t.Errorf("Post gave up after %v, want about %v", elapsed, timeout)
	}
	// The handler may not have run yet when the client gives up: wait for it a while.
	select {
	case <-reached:
	case <-time.After(5 * time.Second):
		t.Error("the request never reached the server: the timeout was not the request's")
	}
}

// A proxy from the environment would make the connection itself, past the address check, so the
// client must not use one. The target is a public documentation address (TEST-NET-1), because Go
// never proxies requests to loopback names and addresses anyway. net/http reads the proxy
// variables once per process, so the POSTs run in a fresh copy of this test binary that inherits
// them: a client that consulted the environment would then reach the proxy.
func TestPostIgnoresProxyFromEnvironment(t *testing.T) {
	if os.Getenv(proxyChildEnv) == "1" {
		postThroughEnvironmentProxy(t)
		return
	}
	proxy, hits := countingServer(t)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv(proxyChildEnv, "1")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPostIgnoresProxyFromEnvironment$", "-test.count=1", "-test.v")
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child test: %v\n%s", err, out)
	}
	if hits.Load() != 0 {
		t.Errorf("proxy got %d requests, want 0", hits.Load())
	}
}

// proxyChildEnv marks the copy of the test binary that TestPostIgnoresProxyFromEnvironment starts.
const proxyChildEnv = "HERALD_WEBHOOKS_PROXY_TEST_CHILD"

// postThroughEnvironmentProxy is the child's half of TestPostIgnoresProxyFromEnvironment. It
// allows private addresses so that the loopback proxy would be reachable were it used.
func postThroughEnvironmentProxy(t *testing.T) {
	client := webhooks.NewClient(local, webhooks.ClientOptions{
		ConnectTimeout: 200 * time.Millisecond,
		Timeout:        time.Second,
	})
	for _, target := range []string{"http://192.0.2.1/h", "https://192.0.2.1/h"} {
		answer, err := client.Post(context.Background(), target, nil, nil)
		if err == nil {
			t.Errorf("Post(%q) = %d, want a connection error: nothing listens there", target, answer.Status)
		}
	}
}

func TestPostKeepsMaxAnswerBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "thanks, received")
	}))
	t.Cleanup(srv.Close)
	client := webhooks.NewClient(local, webhooks.ClientOptions{MaxAnswerBytes: 6})
	t.Cleanup(client.CloseIdleConnections)

	for range 2 { // the second POST may reuse the first's connection
		answer, err := client.Post(context.Background(), srv.URL, nil, nil)
		if err != nil || string(answer.Body) != "thanks" {
			t.Fatalf("Post = %q, %v; want the first 6 bytes, \"thanks\"", answer.Body, err)
		}
	}
}
