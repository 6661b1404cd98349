package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/herald-notify/herald/delivery/deliverytest"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/webhooks"
)

// The operator's dashboard and alerting rules, as shipped.
const (
	rulesFile     = "../deploy/prometheus/herald-rules.yml"
	dashboardFile = "../deploy/grafana/herald.json"
)

// scrapeOnly are the names the rules and the dashboard use that no Herald process exposes:
// Prometheus makes them itself for every target it scrapes.
var scrapeOnly = []string{"up"}

// promql parses PromQL as Prometheus does, with its default functions.
var promql = parser.NewParser(parser.Options{})

// ruleMetrics loads the rules file with Prometheus's own rule loader, which checks the YAML, each
// expression and each template, and returns the metric names each alert's expression reads.
func ruleMetrics(t *testing.T) map[string][]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("load %s: %v", rulesFile, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	used := map[string][]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			names, err := exprMetrics(r.Expr)
			if err != nil {
				t.Errorf("rule %s: %v", name, err)
				continue
			}
			if len(names) == 0 {
				t.Errorf("rule %s reads no metric: %s", name, r.Expr)
			}
			used[name] = names
		}
	}
	if len(used) == 0 {
		t.Fatalf("%s holds no rule", rulesFile)
	}
	return used
}

// grafanaVariables are the dashboard's built-in variables, with a value that parses where they
// stand in an expression (a range).
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// dashboardMetrics returns the metric names each panel of the dashboard reads, by panel title,
// and fails the test on a panel whose expression does not parse or whose data source is not the
// ${DS_PROMETHEUS} variable.
func dashboardMetrics(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"` // a collapsed row's
	}
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("%s: no DS_PROMETHEUS data source variable", dashboardFile)
	}
	used := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q: data source %q, want ${DS_PROMETHEUS}", p.Title, tg.Datasource.UID)
				}
				names, err := exprMetrics(grafanaVariables.Replace(tg.Expr))
				if err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
					continue
				}
				used[p.Title] = append(used[p.Title], names...)
			}
		}
	}
	walk(dash.Panels)
	if len(used) == 0 {
		t.Fatalf("%s has no panel", dashboardFile)
	}
	return used
}

// exprMetrics parses expr as PromQL and returns the metric names its selectors read.
func exprMetrics(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			err = fmt.Errorf("%q selects no metric by name: its names cannot be checked", expr)
			return err
		}
		names = append(names, name)
		return nil
	})
	return names, err
}

// exposedNames returns the sample names the families expose: a histogram's _bucket, _sum and
// _count, a summary's _sum and _count beside its own name, and the name of any other.
func exposedNames(families map[string]*dto.MetricFamily, into map[string]bool) {
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			into[name+"_bucket"], into[name+"_sum"], into[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			into[name], into[name+"_sum"], into[name+"_count"] = true, true, true
		default:
			into[name] = true
		}
	}
}

// scrape reads the /metrics of the process at baseURL.
func scrape(baseURL string) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get(baseURL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", baseURL, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// missing lists, sorted, the uses of a metric that exposed lacks, as "where: name".
func missing(used map[string][]string, exposed map[string]bool) []string {
	var out []string
	for where, names := range used {
		for _, n := range names {
			if !exposed[n] && !slices.Contains(scrapeOnly, n) {
				out = append(out, where+": "+n)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// The rules and the dashboard parse, and name no metric Herald does not expose: a typo, or a
// metric renamed in the code, fails here rather than leaving a panel empty and an alert silent.
// The check itself finds a name that is not exposed.
func TestDashboardAndRulesParse(t *testing.T) {
	rules, panels := ruleMetrics(t), dashboardMetrics(t)
	for _, want := range []string{"HeraldDeliveryFailureRate", "HeraldPoisonQueueGrowing", "HeraldProjectionLag",
		"HeraldOutboxBacklog", "HeraldProcessDown", "HeraldNotReady", "HeraldSealerRefusing"} {
		if _, ok := rules[want]; !ok {
			t.Errorf("no alert %s in %s", want, rulesFile)
		}
	}
	exposed := map[string]bool{"herald_ready": true}
	if got := missing(map[string][]string{"a panel": {"herald_ready", "herald_no_such_metric", "up"}}, exposed); !slices.Equal(got, []string{"a panel: herald_no_such_metric"}) {
		t.Errorf("missing reports %v, want the one name not exposed", got)
	}
	if len(panels) < 20 {
		t.Errorf("the dashboard reads metrics in %d panels; want the 20 and more it ships", len(panels))
	}
}

// Every metric the alerting rules and the dashboard's panels read is on the /metrics of a running
// Herald, split in its four kinds of process, once it has done what makes the labelled series
// appear: a notification sent after a retry, one failed for good and parked, webhook requests to
// an endpoint that is down (so they wait as retries), a checkpoint sealed, through a failover
// list with a rate limit.
func TestDashboardMetricsExist(t *testing.T) {
	used := ruleMetrics(t)
	for title, names := range dashboardMetrics(t) {
		used["panel "+title] = names
	}

	d := newDeps(t)
	backup := deliverytest.NewSMTPSink(t)
	key := filepath.Join(t.TempDir(), "checkpoint.key")
	if _, err := ledger.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	rcv := newHookReceiver(t)
	_, secret, err := webhooks.NewEndpoints(d.DB.Pool, webhooks.Policy{AllowPrivate: true, AllowHTTP: true}).
		Create(context.Background(), webhooks.NewEndpoint{URL: rcv.url()}, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	// The endpoint is down: its failed requests wait as retries, so every webhook series shows.
	rcv.down()
	c := startHerald(t, heraldOpts{Deps: d, Commands: []string{"worker", "projector", "serve", "webhooks serve"}, MaxAttempts: 2,
		Env: map[string]string{
			"HERALD_SMTP_FAILOVER_URLS":    fmt.Sprintf("smtp://%s?tls=none&name=backup", backup.Addr()),
			"HERALD_SMTP_RATE":             "1000/s",
			"HERALD_CHECKPOINT_KEY":        key,
			"HERALD_CHECKPOINT_INTERVAL":   "200ms",
			"HERALD_WEBHOOK_ALLOW_PRIVATE": "true",
			"HERALD_WEBHOOK_ALLOW_HTTP":    "true",
			"HERALD_WEBHOOK_POLL_INTERVAL": "50ms",
		}})

	const (
		refused = "refused@example.com"
		flaky   = "+14155550123"
	)
	d.SMTP.AlwaysFail(refused, 550)
	backup.AlwaysFail(refused, 550)
	d.SMS.FailTimes(flaky, 1, 503)
	sent := send(t, c.API, sendRequest{Type: "email", Recipient: "ok@example.com", Content: "Hello"})
	failed := send(t, c.API, sendRequest{Type: "email", Recipient: refused, Content: "Goodbye"})
	retried := send(t, c.API, sendRequest{Type: "sms", Recipient: flaky, Content: "Your code is 4242"})
	waitStatus(t, c.API, sent, "sent", deliveryTimeout)
	waitStatus(t, c.API, failed, "failed", deliveryTimeout)
	waitStatus(t, c.API, retried, "sent", deliveryTimeout)
	waitQueueDepth(t, c.AMQPURL, queuePoison, 1, 15*time.Second)

	// Webhook deliveries and checkpoints follow the log by moments: poll until every name shows.
	var gaps []string
	heraldtest.Eventually(t, 30*time.Second, "every metric the rules and the dashboard read to be exposed", func() (bool, error) {
		exposed := map[string]bool{}
		for _, p := range c.procs {
			families, err := scrape(p.URL)
			if err != nil {
				return false, fmt.Errorf("herald %s: %w", p.Command, err)
			}
			exposedNames(families, exposed)
		}
		gaps = missing(used, exposed)
		return len(gaps) == 0, fmt.Errorf("not exposed by any process:\n\t%s", strings.Join(gaps, "\n\t"))
	})

	// The figures read at the scrape say what happened: one command parked, nothing waiting in
	// the outbox, the read models caught up, every check ready.
	serve, projector := c.proc(t, "serve").URL+"/metrics", c.proc(t, "projector").URL+"/metrics"
	if got := metric(t, serve, "herald_queue_messages", map[string]string{"queue": queuePoison}); got != 1 {
		t.Errorf("herald_queue_messages{queue=%q} = %v, want 1", queuePoison, got)
	}
	if got := metric(t, c.proc(t, "worker").URL+"/metrics", "herald_delivery_attempts_total", map[string]string{"outcome": "failed"}); got != 1 {
		t.Errorf("herald_delivery_attempts_total{outcome=failed} = %v, want 1", got)
	}
	if got := metric(t, c.proc(t, "worker").URL+"/metrics", "herald_delivery_attempts_total", map[string]string{"channel": "sms", "outcome": "retrying"}); got != 1 {
		t.Errorf("herald_delivery_attempts_total{channel=sms,outcome=retrying} = %v, want 1", got)
	}
	heraldtest.Eventually(t, 15*time.Second, "the outbox and the read models to be caught up", func() (bool, error) {
		backlog := metricValue(t, serve, "herald_outbox_backlog")
		lag := metric(t, projector, "herald_projection_lag_events", nil)
		return backlog == 0 && lag == 0, fmt.Errorf("outbox backlog %v, projection lag %v", backlog, lag)
	})
	for _, p := range c.procs {
		if notReady := metricCount(t, p.URL+"/metrics", "herald_ready", "0"); notReady != 0 {
			t.Errorf("herald %s: %d readiness checks at 0 while /readyz answers 200", p.Command, notReady)
		}
	}
}

// metricValue returns the value of the unlabelled sample name at url.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	families, err := scrape(strings.TrimSuffix(url, "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := families[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("%s: no single sample of %s", url, name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// metricCount counts the samples of name at url whose value prints as value.
func metricCount(t *testing.T, url, name, value string) int {
	t.Helper()
	families, err := scrape(strings.TrimSuffix(url, "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range families[name].GetMetric() {
		if fmt.Sprint(m.GetGauge().GetValue()) == value {
			n++
		}
	}
	return n
}
