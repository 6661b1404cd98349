package e2e_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSendByStoredTemplate: a client stores a template, sends by its name to a real SMTP
// server, and the message carries both parts of that version with the variables escaped in the
// HTML; after a new version, the next send by name uses it, while the log of the first still
// names the version it was rendered from.
func TestSendByStoredTemplate(t *testing.T) {
	c := startHerald(t, heraldOpts{Commands: []string{"all"}})
	resp, body := postJSON(t, c.API+"/api/v1/templates", `{"name":"welcome","channel":"email","subject":"Welcome, {{.name}}",
		"content":"Hello {{.name}}, {{.sign}}","html":"<p>Hello <b>{{.name}}</b></p><p>{{.sign}}</p>",
		"variables":[{"name":"name"},{"name":"sign","default":"the team"}]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create template: %d %s", resp.StatusCode, body)
	}
	id := send(t, c.API, sendRequest{Type: "email", Recipient: "eve@example.net", Template: "welcome",
		Variables: map[string]any{"name": "<i>Eve</i>"}})
	waitStatus(t, c.API, id, "sent", deliveryTimeout)
	got := c.SMTP.Received("eve@example.net")
	if len(got) != 1 || len(got[0].Parts) != 2 {
		t.Fatalf("the sink received %+v, want one message of two parts", got)
	}
	if text, html := got[0].Parts[0].Body, got[0].Parts[1].Body; text != "Hello <i>Eve</i>, the team" ||
		html != "<p>Hello <b>&lt;i&gt;Eve&lt;/i&gt;</b></p><p>the team</p>" {
		t.Errorf("parts: text %q, html %q; want version 1 rendered, the HTML escaped", text, html)
	}
	hist, evs := story(t, c.API, id, 3)
	if hist[0].Template != "welcome@1" {
		t.Errorf("history's first entry names template %q, want welcome@1", hist[0].Template)
	}
	queued := eventData(t, evs[0])
	if ref, _ := queued["template"].(map[string]any); ref["name"] != "welcome" || ref["version"] != float64(1) {
		t.Errorf("NotificationQueued template = %v, want welcome version 1", queued["template"])
	}

	resp, body = postJSON(t, c.API+"/api/v1/templates/welcome/versions", `{"channel":"email","subject":"Hi {{.name}}",
		"content":"Hi {{.name}}","variables":[{"name":"name"}]}`)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("new version: %d %s", resp.StatusCode, body)
	}
	second := send(t, c.API, sendRequest{Type: "email", Recipient: "eve@example.net", Template: "welcome",
		Variables: map[string]any{"name": "Eve"}})
	waitStatus(t, c.API, second, "sent", deliveryTimeout)
	if got := c.SMTP.Received("eve@example.net"); len(got) != 2 || !strings.Contains(got[1].Body, "Hi Eve") {
		t.Errorf("second message %+v, want version 2's text", got[len(got)-1])
	}
	hist, evs = story(t, c.API, second, 3)
	if hist[0].Template != "welcome@2" {
		t.Errorf("second history's first entry names template %q, want welcome@2", hist[0].Template)
	}
	if ref, _ := eventData(t, evs[0])["template"].(map[string]any); ref["version"] != float64(2) {
		t.Errorf("second NotificationQueued template = %v, want version 2", ref)
	}
	out := mustRunCLI(t, c, "events", "list", "--stream", id)
	if !strings.Contains(out, "from template welcome@1") {
		t.Errorf("herald events list --stream %s:\n%s\nwant it to name welcome@1", id, out)
	}
	if out := mustRunCLI(t, c, "notifications", "show", id); !strings.Contains(out, "from template welcome@1") {
		t.Errorf("herald notifications show %s:\n%s\nwant its history to name welcome@1", id, out)
	}
}
