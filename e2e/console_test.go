package e2e_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/heraldtest"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write PNGs of the console's pages into docs/console/")

// browserPaths are where a Chromium or Chrome may be installed.
var browserPaths = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}

// findBrowser returns a Chromium to drive, or skips the test (fails it when the services are
// required).
func findBrowser(t *testing.T) string {
	t.Helper()
	for _, p := range browserPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "no Chromium found (looked at " + strings.Join(browserPaths, ", ") + "): apt-get install -y chromium"
	if heraldtest.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a context that drives one tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findBrowser(t)),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// run runs browser actions, bounded by a minute, and fails the test with what failed.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value, bounded by a minute.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text returns the text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// submit clicks sel, a button that submits a form, and waits until the page it leads to has
// loaded: elements of the page before would otherwise be read as the answer.
func submit(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	get(t, ctx, "mark the page", chromedp.Evaluate[bool](`window.heraldBefore = true`))
	run(t, ctx, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
	heraldtest.Eventually(t, 30*time.Second, "the page after "+sel+" to load", func() (bool, error) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// While the page changes, the evaluation may fail: that is not loaded yet.
		loaded, err := chromedp.Run(wctx, chromedp.Evaluate[bool](`window.heraldBefore !== true && document.readyState === "complete"`))
		return err == nil && loaded, err
	})
}

// waitJob waits until the rebuild page the browser shows, which reloads itself every second while
// the job runs, says it succeeded.
func waitJob(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	heraldtest.Eventually(t, time.Minute, what+" to succeed", func() (bool, error) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// A read during a reload fails: not finished yet.
		state, err := chromedp.Run(wctx, chromedp.Text(chromedp.CSS("#state")))
		if err == nil && state == "failed" {
			t.Fatalf("%s failed: %s", what, text(t, ctx, "main"))
		}
		return err == nil && state == "succeeded", fmt.Errorf("state %q, %v", state, err)
	})
}

// signIn signs the browser in with token.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	run(t, ctx, "sign in",
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible(chromedp.CSS("#api_key")),
		chromedp.SendKeys(chromedp.CSS("#api_key"), token),
	)
	submit(t, ctx, "#sign_in")
}

// screenshot writes the page, when -update-screenshots is given, as docs/console/name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	buf := get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if _, err := png.Decode(bytes.NewReader(buf)); err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if len(buf) > 150<<10 {
		t.Errorf("screenshot %s is %d KB, want at most 150 KB", name, len(buf)>>10)
	}
	path := filepath.Join("..", "docs", "console", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// createKeyNamed makes an API key with scopes and returns its name.
func createKeyNamed(t *testing.T, d *deps, name string, scopes ...herald.Scope) string {
	t.Helper()
	createKey(t, d, name, scopes...)
	return name
}

// keyID returns the id of the key named name.
func keyID(t *testing.T, d *deps, name string) string {
	t.Helper()
	var id string
	if err := d.DB.Pool.QueryRow(context.Background(), `SELECT id::text FROM api_keys WHERE name = $1`, name).Scan(&id); err != nil {
		t.Fatalf("key %s: %v", name, err)
	}
	return id
}

// fetch gets page with c and returns its body.
func fetch(t *testing.T, c *http.Client, page string) string {
	t.Helper()
	resp, err := c.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s answered %s:\n%s", page, resp.Status, buf.String())
	}
	return buf.String()
}

// createKey makes an API key with scopes in the cluster's database and returns its token.
func createKey(t *testing.T, d *deps, name string, scopes ...herald.Scope) string {
	t.Helper()
	_, token, err := apikeys.NewStore(d.DB.Pool).Create(context.Background(), name, scopes, "test")
	if err != nil {
		t.Fatalf("create API key %s: %v", name, err)
	}
	return token
}

// TestConsoleInBrowser drives the console in a headless Chromium against a running Herald: a key
// without the operate scope is refused; search; a failed notification's timeline and its state
// as of a time; content with HTML in it shown as text; a poison requeue previewed, then
// confirmed, turning the notification sent, and a discard; a dry-run rebuild followed to its
// report, then a rebuild swapped in; a key made and revoked; sign-out.
func TestConsoleInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	h := startHerald(t, heraldOpts{Commands: []string{"all"}, MaxAttempts: 2})
	readOnly := createKey(t, h.deps, "reader", herald.ScopeRead, herald.ScopeSend)
	// The console's operator makes and revokes a key below: it holds admin, and read to grant it.
	operator := createKey(t, h.deps, "console-op", herald.ScopeOperate, herald.ScopeAdmin, herald.ScopeRead)

	const phone = "+14155550199"
	h.SMS.AlwaysFail(phone, 503)
	smsID := send(t, h.API, sendRequest{Type: "sms", Recipient: phone, Content: "Your code is 4242"})
	const gone = "+14155550198"
	h.SMS.AlwaysFail(gone, 503)
	goneID := send(t, h.API, sendRequest{Type: "sms", Recipient: gone, Content: "Your code is 1234"})
	const hostile = `Hello <b>bold</b> <script>document.title="pwned"</script> & <img src=x>`
	emailID := send(t, h.API, sendRequest{Type: "email", Recipient: "reader@example.com", Subject: "<i>Subject</i> {{.name}}",
		Content: hostile, Variables: map[string]any{"name": "<b>Ann</b>"}})
	waitStatus(t, h.API, emailID, "sent", deliveryTimeout)
	failed := waitStatus(t, h.API, smsID, "failed", deliveryTimeout)
	waitStatus(t, h.API, goneID, "failed", deliveryTimeout)
	waitQueueDepth(t, h.AMQPURL, queuePoison, 2, 15*time.Second)
	story(t, h.API, smsID, 5)

	// A key without operate is refused, and says why.
	signIn(t, ctx, h.API, readOnly)
	if got := text(t, ctx, "#problem"); !strings.Contains(got, `"reader" lacks the operate scope`) {
		t.Errorf("signing in with a key without operate shows %q, want that it lacks the operate scope", got)
	}
	screenshot(t, ctx, "login")
	run(t, ctx, "open the overview unsigned", chromedp.Navigate(h.API+"/console/"))
	loc := get(t, ctx, "location", chromedp.Location())
	if !strings.HasSuffix(loc, "/console/login") {
		t.Errorf("the overview without a session went to %s, want the sign-in page", loc)
	}

	signIn(t, ctx, h.API, operator)
	if got := text(t, ctx, "#who"); got != "console-op" {
		t.Fatalf("after signing in the console says %q signed in, want console-op", got)
	}
	if got := text(t, ctx, "#counts"); !strings.Contains(got, "sms") {
		t.Errorf("the overview's counts read %q, want a row for sms", got)
	}
	run(t, ctx, "wait for the chart", chromedp.WaitVisible(chromedp.CSS("#chart")))
	if got := text(t, ctx, "#queues"); !regexp.MustCompile(`poison_notifications\s+2\b`).MatchString(got) {
		t.Errorf("the overview's queues read %q, want poison_notifications holding 2", got)
	}
	screenshot(t, ctx, "overview")
	// The overview reloads itself only when asked: an idle tab must not keep its session alive.
	if n := get(t, ctx, "look for a refresh", chromedp.Evaluate[int](`document.querySelectorAll("meta[http-equiv=refresh]").length`)); n != 0 {
		t.Errorf("the overview refreshes itself unasked (%d meta refresh)", n)
	}
	submit(t, ctx, "#refresh")
	if got := get(t, ctx, "read the refresh", chromedp.Evaluate[string](`(document.querySelector("meta[http-equiv=refresh]") || {}).content || ""`)); got != "30" {
		t.Errorf("after choosing to refresh, the overview's refresh is %q, want 30", got)
	}

	// Search: the failed SMS, by status and type, and by recipient.
	run(t, ctx, "search failed sms",
		chromedp.Navigate(h.API+"/console/notifications"),
		chromedp.SetValue(chromedp.CSS("#status"), "failed"),
		chromedp.SetValue(chromedp.CSS("#type"), "sms"),
	)
	submit(t, ctx, "#search")
	if got := text(t, ctx, "#results tbody"); !strings.Contains(got, smsID) || !strings.Contains(got, goneID) || strings.Contains(got, emailID) {
		t.Errorf("searching failed sms lists %q, want %s and %s and not %s", got, smsID, goneID, emailID)
	}
	screenshot(t, ctx, "notifications")
	run(t, ctx, "search by recipient", chromedp.Navigate(h.API+"/console/notifications?recipient="+url.QueryEscape("reader@example.com")))
	if got := text(t, ctx, "#results tbody"); !strings.Contains(got, emailID) || strings.Contains(got, smsID) {
		t.Errorf("searching by recipient lists %q, want %s only", got, emailID)
	}
	future := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
	run(t, ctx, "search from the future", chromedp.Navigate(h.API+"/console/notifications?from="+future))
	if got := text(t, ctx, "#results tbody"); !strings.Contains(got, "No notifications match") {
		t.Errorf("searching from %s lists %q, want none", future, got)
	}

	// The failed SMS's timeline: every attempt with its error, and the failure.
	run(t, ctx, "open the failed SMS", chromedp.Navigate(h.API+"/console/notifications/"+smsID), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	timeline := text(t, ctx, "#timeline tbody")
	for _, want := range []string{"NotificationQueued", "DeliveryAttemptFailed", "NotificationFailed", "503", "attempts_exhausted"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("the timeline of %s does not show %q:\n%s", smsID, want, timeline)
		}
	}
	// Two attempts: the first failed and was retried, the second failed it for good.
	attempts := get(t, ctx, "count attempts", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#timeline tr.event-NotificationProcessing")].map(r => r.textContent)`))
	if len(attempts) != 2 {
		t.Errorf("the timeline shows %d attempts started, want 2: %q", len(attempts), attempts)
	}
	screenshot(t, ctx, "notification")
	// As of the moment it was accepted, it was pending.
	var accepted struct {
		CreatedAt time.Time `json:"created_at"`
	}
	getJSON(t, h.API+"/api/v1/notifications/"+smsID+"/status", &accepted)
	asOf := accepted.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
	run(t, ctx, "as of", chromedp.Navigate(h.API+"/console/notifications/"+smsID+"?as_of="+url.QueryEscape(asOf)),
		chromedp.WaitVisible(chromedp.CSS("#as_of_state")))
	if got := text(t, ctx, "#as_of_state"); !strings.Contains(got, "pending") || strings.Contains(got, "failed") {
		t.Errorf("as of %s the console shows %q, want pending", asOf, got)
	}

	// Content with HTML in it is text: the tags show, none is an element, no script ran.
	run(t, ctx, "open the email", chromedp.Navigate(h.API+"/console/notifications/"+emailID), chromedp.WaitVisible(chromedp.CSS("#content_body")))
	if got := text(t, ctx, "#content_body"); !strings.Contains(got, `<b>bold</b> <script>document.title="pwned"</script>`) {
		t.Errorf("the email's text shows %q, want its tags literally", got)
	}
	if got := text(t, ctx, "#content_subject"); got != "<i>Subject</i> <b>Ann</b>" {
		t.Errorf("the email's subject shows %q, want its tags literally", got)
	}
	elements := get(t, ctx, "look for injected elements", chromedp.Evaluate[int](`document.querySelectorAll("main b, main i, main script, main img").length`))
	title := get(t, ctx, "title", chromedp.Title())
	if elements != 0 || title == "pwned" {
		t.Errorf("the email's content made %d elements and the title %q: HTML in content must stay text", elements, title)
	}
	get(t, ctx, "scroll to the content", chromedp.Evaluate[bool](`document.querySelector("h2:last-of-type").scrollIntoView(), true`))
	screenshot(t, ctx, "content")

	// The poison queue: preview a requeue, see that nothing happened, confirm, and it is sent.
	h.SMS.FailTimes(phone, 0, 503)
	run(t, ctx, "open the poison queue", chromedp.Navigate(h.API+"/console/poison"), chromedp.WaitVisible(chromedp.CSS("#parked")))
	if got := text(t, ctx, "#parked tbody"); !strings.Contains(got, smsID) || !strings.Contains(got, "attempts_exhausted") {
		t.Errorf("the poison queue shows %q, want %s, failed after its attempts", got, smsID)
	}
	screenshot(t, ctx, "poison")
	run(t, ctx, "preview a requeue",
		chromedp.Click(chromedp.CSS("#select-"+smsID)),
		chromedp.SendKeys(chromedp.CSS("#reason"), "gateway fixed <b>now</b>"),
	)
	submit(t, ctx, "#preview")
	plan := text(t, ctx, "#plan tbody")
	if !strings.Contains(plan, smsID) || !strings.Contains(plan, "failed") || !strings.Contains(plan, "requeued") {
		t.Errorf("the preview shows %q, want %s, failed now, to be requeued", plan, smsID)
	}
	if got := text(t, ctx, "#preview_reason"); got != "gateway fixed <b>now</b>" {
		t.Errorf("the preview shows the reason as %q", got)
	}
	screenshot(t, ctx, "poison-preview")
	// The preview did nothing.
	if n := waitStatusNow(t, h.API, smsID); n.Status != "failed" || n.Version != failed.Version {
		t.Errorf("after the preview the SMS is %s v%d, want failed v%d as before", n.Status, n.Version, failed.Version)
	}
	if d := heraldtest.QueueDepth(t, h.AMQPURL, queuePoison); d != 2 {
		t.Errorf("after the preview the poison queue holds %d, want 2", d)
	}
	submit(t, ctx, "#confirm")
	if got := text(t, ctx, "#results tbody"); !strings.Contains(got, smsID) || !strings.Contains(got, "requeued") {
		t.Errorf("the confirmation shows %q, want %s requeued", got, smsID)
	}
	heraldtest.Eventually(t, deliveryTimeout, "the requeued SMS to be sent", func() (bool, error) {
		n := waitStatusNow(t, h.API, smsID)
		return n.Status == "sent", fmt.Errorf("status %s v%d", n.Status, n.Version)
	})
	run(t, ctx, "open the sent SMS", chromedp.Navigate(h.API+"/console/notifications/"+smsID), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	if got := text(t, ctx, "#timeline tbody"); !regexp.MustCompile(`NotificationRequeued[^\n]*gateway fixed <b>now</b>[^\n]*apikey:console-op`).MatchString(got) ||
		!strings.Contains(got, "NotificationSent") {
		t.Errorf("the timeline after the requeue reads:\n%s\nwant the requeue with its reason and actor apikey:console-op, then the send", got)
	}

	// The other is given up on: a discard, previewed and confirmed, leaves it failed and unparked.
	run(t, ctx, "preview a discard",
		chromedp.Navigate(h.API+"/console/poison"),
		chromedp.Click(chromedp.CSS("#select-"+goneID)),
		chromedp.Click(chromedp.CSS("#action_discard")),
		chromedp.SendKeys(chromedp.CSS("#reason"), "number no longer in service"),
	)
	submit(t, ctx, "#preview")
	if got := text(t, ctx, "#plan tbody"); !strings.Contains(got, goneID) || !strings.Contains(got, "discarded") || strings.Contains(got, smsID) {
		t.Errorf("the discard preview shows %q, want only %s, to be discarded", got, goneID)
	}
	submit(t, ctx, "#confirm")
	if got := text(t, ctx, "#results tbody"); !strings.Contains(got, goneID) || !strings.Contains(got, "discarded") || !strings.Contains(got, "failed") {
		t.Errorf("the discard answered %q, want %s discarded and still failed", got, goneID)
	}
	waitQueueDepth(t, h.AMQPURL, queuePoison, 0, 10*time.Second)

	// A dry-run rebuild, followed to its report.
	run(t, ctx, "start a dry run",
		chromedp.Navigate(h.API+"/console/projections"),
		chromedp.WaitVisible(chromedp.CSS("#projections")),
	)
	screenshot(t, ctx, "projections")
	submit(t, ctx, "#dry_run-notification_status")
	waitJob(t, ctx, "the dry run")
	if got := text(t, ctx, "#swapped"); got != "false" {
		t.Errorf("the dry run says swapped %q, want false", got)
	}
	if got := text(t, ctx, "#missing") + text(t, ctx, "#extra"); got != "00" {
		t.Errorf("the dry run found missing and extra rows %q, want none", got)
	}
	screenshot(t, ctx, "rebuild")
	// Then the rebuild for real, swapped in, from the dry run's report.
	submit(t, ctx, "#swap")
	waitJob(t, ctx, "the rebuild")
	if got := text(t, ctx, "#swapped"); got != "true" {
		t.Errorf("the rebuild says swapped %q, want true", got)
	}
	if n := waitStatusNow(t, h.API, smsID); n.Status != "sent" {
		t.Errorf("after the rebuild the SMS reads %s, want sent", n.Status)
	}

	// A key made (its token shown once) and revoked.
	run(t, ctx, "create a key",
		chromedp.Navigate(h.API+"/console/keys"),
		chromedp.SendKeys(chromedp.CSS("#key_name"), "made-in-console"),
		chromedp.Click(chromedp.CSS("#scope-read")),
	)
	submit(t, ctx, "#create_key")
	token := text(t, ctx, "#token")
	if !strings.HasPrefix(token, apikeys.TokenPrefix) {
		t.Fatalf("the new key's token reads %q", token)
	}
	if st := apiStatusWith(t, h.API+"/api/v1/notifications/"+smsID+"/status", token); st != http.StatusOK {
		t.Errorf("the key made in the console reads a status with %d, want 200", st)
	}
	submit(t, ctx, "#revoke-made-in-console")
	heraldtest.Eventually(t, 2*apikeys.CacheFor, "the revoked key to be refused", func() (bool, error) {
		st := apiStatusWith(t, h.API+"/api/v1/notifications/"+smsID+"/status", token)
		return st == http.StatusUnauthorized, fmt.Errorf("answered %d", st)
	})
	if got := text(t, ctx, "#keys tbody"); strings.Contains(got, token) {
		t.Error("the key list shows a token")
	}
	screenshot(t, ctx, "keys")

	// Sign-out ends the session.
	submit(t, ctx, "#logout")
	run(t, ctx, "after sign-out", chromedp.Navigate(h.API+"/console/notifications"))
	loc = get(t, ctx, "location", chromedp.Location())
	if !strings.HasSuffix(loc, "/console/login") {
		t.Errorf("after signing out the search went to %s, want the sign-in page", loc)
	}
}

// waitStatusNow reads the notification's status once.
func waitStatusNow(t *testing.T, base, id string) notificationJSON {
	t.Helper()
	var n notificationJSON
	getJSON(t, base+"/api/v1/notifications/"+id+"/status", &n)
	return n
}

// apiStatusWith gets url with token and returns the HTTP status.
func apiStatusWith(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// consoleClient is a plain HTTP client with its own cookies, as a browser would keep them.
func consoleClient(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// loginOnly is a client that sends only c's sign-in cookie, not its session, and keeps nothing it
// is answered: a second browser signing in with the form c fetched, leaving c's session alone
// (signing in again from c would end it).
func loginOnly(t *testing.T, c *http.Client, base string) *http.Client {
	t.Helper()
	u, _ := url.Parse(base + "/")
	jar, _ := cookiejar.New(nil)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "herald_console_login" {
			jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/console"}})
		}
	}
	return &http.Client{Jar: readOnlyJar{jar}, Timeout: c.Timeout, CheckRedirect: c.CheckRedirect}
}

type readOnlyJar struct{ http.CookieJar }

func (readOnlyJar) SetCookies(*url.URL, []*http.Cookie) {}

var hiddenInput = regexp.MustCompile(`name="(login_token|csrf)" value="([^"]+)"`)

// formToken fetches page with c and returns the value of its hidden field name.
func formToken(t *testing.T, c *http.Client, page, name string) string {
	t.Helper()
	resp, err := c.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for _, m := range hiddenInput.FindAllStringSubmatch(buf.String(), -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("GET %s (%s) has no %s field", page, resp.Status, name)
	return ""
}

// TestConsoleRefusesForgedPosts checks, with a plain HTTP client, what a browser cannot show:
// every state-changing POST (sign-out, poison preview and act, rebuild, key creation and
// revocation) without the session's CSRF token or with a wrong one is refused and changes nothing,
// a sign-in without the form's token or with a wrong one too; the session cookie is HttpOnly and SameSite=Strict; and every
// page carries the security headers.
func TestConsoleRefusesForgedPosts(t *testing.T) {
	h := startHerald(t, heraldOpts{Commands: []string{"all"}})
	// With admin, the key may change keys: only the missing token can refuse those posts.
	operator := createKey(t, h.deps, "console-op", herald.ScopeOperate, herald.ScopeAdmin, herald.ScopeRead)
	base := h.API + "/console"
	c := consoleClient(t)

	// A sign-in posted from elsewhere, without the form's token, is refused.
	resp, err := c.PostForm(base+"/login", url.Values{"api_key": {operator}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a sign-in without the form's token answered %s, want 403", resp.Status)
	}

	login := formToken(t, c, base+"/login", "login_token")
	resp, err = c.PostForm(base+"/login", url.Values{"api_key": {operator}, "login_token": {login}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in answered %s, want 303", resp.Status)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "herald_console" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console" {
		t.Fatalf("the session cookie is %+v, want HttpOnly, SameSite=Strict, Path=/console", session)
	}
	if session.Secure {
		t.Error("the session cookie of a console reached over plain HTTP is Secure: the browser would never send it back")
	}
	// Through a proxy that ended TLS, the cookie is Secure.
	login = formToken(t, c, base+"/login", "login_token")
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"api_key": {operator}, "login_token": {login}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err = loginOnly(t, c, base).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var proxied *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "herald_console" {
			proxied = ck
		}
	}
	if proxied == nil || !proxied.Secure {
		t.Errorf("signing in through a proxy that ended TLS answered %s with the session cookie %+v, want a Secure one", resp.Status, proxied)
	}
	var stored int
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM console_sessions WHERE token_hash = sha256($1::bytea)`,
		[]byte(session.Value)).Scan(&stored); err != nil || stored != 1 {
		t.Errorf("sessions stored under the token's SHA-256: %d (%v), want 1", stored, err)
	}

	// Every state-changing POST, without its form's token and with a wrong one, is refused 403
	// and changes nothing: no event, no command, no session, no key, no rebuild.
	csrf := formToken(t, c, base+"/keys", "csrf")
	victimID := keyID(t, h.deps, createKeyNamed(t, h.deps, "victim", herald.ScopeSend))
	const someID = "0b0e5b7e-4b1a-4f0e-9d55-2f1f4a0c8e01"
	snapshot := func() string {
		t.Helper()
		var counts, keys string
		if err := h.DB.Pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM event_log)::text || ' events, ' || (SELECT count(*) FROM outbox)::text || ' commands, ' ||
			(SELECT count(*) FROM console_sessions)::text || ' sessions',
			(SELECT string_agg(name || CASE WHEN revoked_at IS NULL THEN '' ELSE ' (revoked)' END, ', ' ORDER BY name) FROM api_keys)`).
			Scan(&counts, &keys); err != nil {
			t.Fatal(err)
		}
		page := fetch(t, c, base+"/projections")
		return fmt.Sprintf("%s; keys %s; %d rebuilds", counts, keys, strings.Count(page, "/projections/rebuilds/"))
	}
	before := snapshot()
	for _, route := range []struct {
		name, path string
		form       url.Values
		field      string // the form's token
		says       string // what the refusal says
	}{
		{"sign-out", "/logout", url.Values{}, "csrf", "CSRF token"},
		{"poison preview", "/poison/preview", url.Values{"action": {"requeued"}, "id": {someID}, "reason": {"forged"}}, "csrf", "CSRF token"},
		{"poison act", "/poison/act", url.Values{"action": {"requeued"}, "id": {someID}, "reason": {"forged"},
			"version." + someID: {"5"}, "planned." + someID: {"requeued"}}, "csrf", "CSRF token"},
		{"rebuild", "/projections/notification_status/rebuild", url.Values{"mode": {"swap"}}, "csrf", "CSRF token"},
		{"key creation", "/keys", url.Values{"name": {"forged"}, "scope": {"operate"}}, "csrf", "CSRF token"},
		{"key revocation", "/keys/" + victimID + "/revoke", url.Values{}, "csrf", "CSRF token"},
		{"sign-in", "/login", url.Values{"api_key": {operator}}, "login_token", "did not come from this console"},
	} {
		for _, wrong := range []bool{false, true} {
			form := url.Values{}
			for k, v := range route.form {
				form[k] = v
			}
			what := route.name + " without its token"
			if wrong {
				what = route.name + " with a wrong token"
				token := csrf
				if route.field == "login_token" {
					token = formToken(t, c, base+"/login", "login_token")
				}
				form.Set(route.field, token+"x")
			}
			resp, err := c.PostForm(base+route.path, form)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body.String(), route.says) {
				t.Errorf("%s answered %s, want 403 saying %q:\n%s", what, resp.Status, route.says, body.String())
			}
			if after := snapshot(); after != before {
				t.Errorf("%s changed the state: %s, then %s", what, before, after)
			}
		}
	}
	// With the token, the same form works: the refusals were the token's doing.
	resp, err = c.PostForm(base+"/keys", url.Values{"name": {"genuine"}, "scope": {"read"}, "csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("the POST with the CSRF token answered %s, want 201", resp.Status)
	}

	resp, err = c.Get(base + "/notifications")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for header, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := resp.Header.Get(header); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to contain %q", header, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Errorf("the CSP allows inline code: %s", csp)
	}

	// Sign-out, itself a form with the token, ends the session in the database.
	resp, err = c.PostForm(base+"/logout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM console_sessions WHERE token_hash = sha256($1::bytea)`,
		[]byte(session.Value)).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("after signing out its session is stored %d times (%v), want 0", stored, err)
	}
	resp, err = c.Get(base + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/console/login") {
		t.Errorf("after signing out the keys page answered %s to %s, want 303 to the sign-in page", resp.Status, resp.Header.Get("Location"))
	}
}

// TestConsoleKeysNeedAdmin checks, with a plain HTTP client, that a session of a key with operate
// but without admin lists the keys with a note, and that its key creation and revocation, with
// the right CSRF token, are refused 403 and change no key.
func TestConsoleKeysNeedAdmin(t *testing.T) {
	h := startHerald(t, heraldOpts{Commands: []string{"all"}})
	operator := createKey(t, h.deps, "console-op", herald.ScopeOperate, herald.ScopeRead)
	victimID := keyID(t, h.deps, createKeyNamed(t, h.deps, "victim", herald.ScopeSend))
	base := h.API + "/console"
	c := consoleClient(t)
	login := formToken(t, c, base+"/login", "login_token")
	resp, err := c.PostForm(base+"/login", url.Values{"api_key": {operator}, "login_token": {login}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in answered %s, want 303", resp.Status)
	}
	page := fetch(t, c, base+"/keys")
	if !strings.Contains(page, "victim") || !strings.Contains(page, `id="not_admin"`) || strings.Contains(page, `id="create_key"`) {
		t.Errorf("the keys page of an operate key should list the keys and say it lacks admin:\n%s", page)
	}
	keys := func() string {
		var s string
		if err := h.DB.Pool.QueryRow(context.Background(), `SELECT string_agg(name || CASE WHEN revoked_at IS NULL THEN '' ELSE ' (revoked)' END, ', ' ORDER BY name) FROM api_keys`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := keys()
	csrf := formToken(t, c, base+"/keys", "csrf")
	for path, form := range map[string]url.Values{
		"/keys":                         {"name": {"successor"}, "scope": {"operate"}, "csrf": {csrf}},
		"/keys/" + victimID + "/revoke": {"csrf": {csrf}},
	} {
		resp, err := c.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body.String(), "admin scope") {
			t.Errorf("POST %s by an operate key answered %s, want 403 naming the admin scope:\n%s", path, resp.Status, body.String())
		}
	}
	if after := keys(); after != before {
		t.Errorf("the refused posts changed the keys: %s, then %s", before, after)
	}
}
