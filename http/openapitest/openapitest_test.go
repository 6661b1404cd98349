package openapitest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/http/openapitest"
	"github.com/herald-notify/herald/wire"
)

const id = "6f1c2a9e-8d4b-4c1e-9a57-3b2f0d6e8a11"

// exchange is one request and the answer a server gave it.
type exchange struct {
	method, path, body string
	header             http.Header
	status             int
	answer             string
}

func (e exchange) check(t *testing.T, c *openapitest.Checker) error {
	t.Helper()
	req := httptest.NewRequest(e.method, "http://herald.test"+e.path, strings.NewReader(e.body))
	req.Header.Set("Authorization", "Bearer hk_test")
	for k, v := range e.header {
		req.Header[k] = v
	}
	resp := &http.Response{StatusCode: e.status, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}
	return c.Check(req, []byte(e.body), resp, []byte(e.answer))
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The checker passes what the server really answers, and fails answers, requests and routes
// that break the document: the check the tests rely on can fail.
func TestCheckerRejectsWhatBreaksTheDocument(t *testing.T) {
	c, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	n := wire.NewNotification(herald.Notification{ID: id, Channel: herald.ChannelEmail, Recipient: "a@example.com",
		Status: herald.StatusPending, Version: 1, Position: 3, CreatedAt: at, UpdatedAt: at})
	good := marshal(t, n)
	withStatus := func(status string) string {
		m := map[string]any{}
		_ = json.Unmarshal([]byte(good), &m)
		m["status"] = status
		return marshal(t, m)
	}
	status := "/api/v1/notifications/" + id + "/status"
	invalid := marshal(t, wire.NewError(herald.EINVALID, "the notification is invalid", map[string]string{"recipient": "is required"}))
	sendHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name    string
		x       exchange
		wantErr string
	}{
		{name: "a notification as wire marshals it", x: exchange{method: "GET", path: status, status: 200, answer: good}},
		{name: "a status the API does not have", x: exchange{method: "GET", path: status, status: 200, answer: withStatus("lost")}, wantErr: "breaks the OpenAPI document"},
		{name: "a field missing", x: exchange{method: "GET", path: status, status: 200, answer: strings.Replace(good, `"version":1,`, "", 1)}, wantErr: "version"},
		{name: "a field the document does not have", x: exchange{method: "GET", path: status, status: 200, answer: strings.Replace(good, `{`, `{"colour":"red",`, 1)}, wantErr: "colour"},
		{name: "an error not in the error shape", x: exchange{method: "GET", path: status, status: 404, answer: `{"message":"no"}`}, wantErr: "breaks the OpenAPI document"},
		{name: "an error in the error shape", x: exchange{method: "GET", path: status, status: 404, answer: marshal(t, wire.NewError(herald.ENOTFOUND, "no such notification", nil))}},
		{name: "a status code the operation does not document", x: exchange{method: "GET", path: status, status: 201, answer: good}, wantErr: "breaks the OpenAPI document"},
		{name: "a route the document does not have, answered", x: exchange{method: "GET", path: "/api/v1/nowhere", status: 200, answer: `{}`}, wantErr: "no matching operation"},
		{name: "a route the document does not have, refused", x: exchange{method: "GET", path: "/api/v1/nowhere", status: 404, answer: marshal(t, wire.NewError("route_not_found", "no such endpoint", nil))}},
		{name: "a send the document refuses, accepted", x: exchange{method: "POST", path: "/api/v1/notifications/send", header: sendHeader,
			body: `{"type":"email","content":"hi"}`, status: 202, answer: good}, wantErr: "refuses the request"},
		{name: "a send the document refuses, refused", x: exchange{method: "POST", path: "/api/v1/notifications/send", header: sendHeader,
			body: `{"type":"email","content":"hi"}`, status: 422, answer: invalid}},
		{name: "a send without an API key, accepted", x: exchange{method: "POST", path: "/api/v1/notifications/send",
			header: http.Header{"Content-Type": {"application/json"}, "Authorization": {""}},
			body:   `{"type":"email","recipient":"a@example.com","content":"hi"}`, status: 202, answer: good}, wantErr: "refuses the request"},
		{name: "a send, accepted", x: exchange{method: "POST", path: "/api/v1/notifications/send", header: sendHeader,
			body: `{"type":"email","recipient":"a@example.com","content":"hi"}`, status: 202, answer: good}},
		{name: "a list parameter out of range, answered", x: exchange{method: "GET", path: "/api/v1/notifications?limit=0", status: 200,
			answer: `{"notifications":[]}`}, wantErr: "refuses the request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.x.check(t, c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("want it to pass: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("passed; want it refused (%s)", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("refused with %v; want it to say %q", err, tc.wantErr)
			}
		})
	}
}

// A Transport reports a mismatch where Report says, and carries requests it is told not to
// check without looking at them.
func TestTransportReportsToItsTest(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"status":"fine"}`))
	}))
	t.Cleanup(ts.Close)
	c, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	check := true
	client := &http.Client{Transport: &openapitest.Transport{Checker: c, Next: http.DefaultTransport,
		Report: func(*http.Request) func(string, ...any) {
			if !check {
				return nil
			}
			return func(format string, args ...any) { reported = append(reported, format) }
		}}}
	for _, on := range []bool{false, true} {
		check = on
		resp, err := client.Get(ts.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["status"] != "fine" {
			t.Errorf("the caller reads %v (%v), want the answer as sent", body, err)
		}
		resp.Body.Close()
	}
	if len(reported) != 1 {
		t.Errorf("%d reports, want 1: of the checked /healthz answering a status the document does not have", len(reported))
	}
}
