package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-notify/herald"
)

// WriteTable writes r for a reader: a header that says what ran where, one section of rows per
// part of the report, then the problems, the warnings and the verdict. Every figure it shows is
// in the JSON report too.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	r.writeHeader(&b)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	rows := table{tw}
	r.loadRows(rows)
	r.deliveryRows(rows)
	r.webhookRows(rows)
	r.statusRows(rows)
	r.outcomeRows(rows)
	r.memoryRows(rows)
	r.ceilingRows(rows)
	r.costRows(rows)
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")
	r.writeVerdict(&b)
	_, err := io.WriteString(w, trimTrailingSpaces(b.String()))
	return err
}

// table writes the rows of the report's sections, their cells aligned in columns.
type table struct{ tw *tabwriter.Writer }

// row writes one row; empty trailing cells are left empty, not dropped, to keep the columns.
func (t table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

// writeHeader says what the run sent, to what, on which machine and when.
func (r *Report) writeHeader(b *strings.Builder) {
	s, e := r.Settings, r.Environment
	emails := ""
	if s.HTML {
		emails = ", emails with the HTML newsletter"
	}
	if s.Template {
		emails += ", sent by stored templates"
	}
	fmt.Fprintf(b, "herald bench: %d notifications (%.0f%% SMS%s), %s, against %s\n", s.N, 100*s.SMSRatio, emails, loopOf(s), targetOf(s))
	if len(s.Env) > 0 {
		fmt.Fprintf(b, "env: %s\n", strings.Join(s.Env, " "))
	}
	if l := r.ledgerLine(); l != "" {
		fmt.Fprintf(b, "ledger: %s\n", l)
	}
	fmt.Fprintf(b, "machine: %d CPUs %s, %s, PostgreSQL %s, RabbitMQ %s, herald %s\n",
		e.CPUs, e.CPUModel, e.GoVersion, orDash(e.PostgresVersion), orDash(e.RabbitMQVersion), e.HeraldVersion)
	fmt.Fprintf(b, "run: %s to %s, load average at start %s\n\n", r.Started.Format(time.RFC3339), r.Finished.Format(time.RFC3339), orDash(e.LoadAverage))
}

// ledgerLine says what tamper-evident log Herald ran with, when the run chose one ("" for a
// report from before --ledger).
func (r *Report) ledgerLine() string {
	switch r.Settings.Ledger {
	case LedgerChained:
		return "chained (the log's chain trigger, no checkpoint key: no sealer)"
	case LedgerSealed:
		sealed := "-"
		if r.CheckpointsSealed != nil {
			sealed = fmt.Sprint(*r.CheckpointsSealed)
		}
		return fmt.Sprintf("sealed (the chain, and the sealer signing with a key the run made: %s checkpoints)", sealed)
	case LedgerOff:
		return "off (the chain trigger disabled in the run's database: a baseline; that log does not verify)"
	case LedgerUnknown:
		return "unknown (--url: the Herald driven is not bench's own)"
	}
	return r.Settings.Ledger
}

// loopOf describes how the requests were paced.
func loopOf(s Settings) string {
	if s.Loop == "open" {
		return fmt.Sprintf("open loop at %s/s, at most %d in flight", num(s.Rate), s.MaxInFlight)
	}
	return fmt.Sprintf("closed loop, %d clients", s.Concurrency)
}

// targetOf names the Herald the run drove: the processes it spawned, or the URL it was given.
func targetOf(s Settings) string {
	if s.Mode == "url" {
		return s.URL
	}
	target := "spawned herald " + strings.Join(s.Spawn, ",")
	if s.Workers > 1 {
		target += fmt.Sprintf(" (%d workers)", s.Workers)
	}
	return target
}

// loadRows shows what the API did with the POSTs, and how busy the machine was meanwhile.
func (r *Report) loadRows(t table) {
	s, l := r.Settings, r.Load
	t.row("API (POST /send)", "", "")
	t.row("  accepted", fmt.Sprintf("%d of %d in %s", l.Accepted, l.Requested, secs(l.Seconds)), rate(l.AcceptedPerSec))
	t.row("  errors", errorsCell(l), "")
	other := "all processes, Herald's or not"
	if s.Mode == "spawn" {
		other = fmt.Sprintf("%s CPU of it outside the run's accounted processes", secs(l.OtherCPUSeconds))
	}
	t.row("  machine CPU busy", fmt.Sprintf("%.0f%% while sending", 100*l.MachineCPUBusy), other)
	t.row("  API latency", pcts(l.APILatency, true), fmt.Sprintf("%d POSTs", l.APILatency.Count))
	if s.Loop == "open" {
		t.row("  start delay", fmt.Sprintf("max %s, %d started >10ms late", ms(l.MaxStartDelayMS), l.LateStarts), "")
	}
}

// deliveryRows shows what reached the bench's sinks, or says that nothing could with --url.
func (r *Report) deliveryRows(t table) {
	d := r.Delivery
	if d == nil {
		t.row("DELIVERY", "not measured with --url (no sinks)", "")
		return
	}
	t.row("DELIVERY (bench sinks)", "", "")
	t.row("  delivered", fmt.Sprintf("%d distinct in %s, %d undelivered", d.Delivered, secs(d.Seconds), d.Undelivered), rate(d.DeliveredPerSec)+" end to end")
	t.row("  duplicates", fmt.Sprintf("%d duplicates, %d unexpected, %d id mismatches", d.Duplicates, d.Unexpected, d.IDMismatches), "")
	t.row("  accept→delivery", pcts(d.AcceptToDelivery, false), "every notification")
	for _, ch := range herald.Channels {
		if c, ok := d.AcceptToDeliveryByChannel[string(ch)]; ok {
			t.row("    "+string(ch), pcts(c, false), "")
		}
	}
}

// webhookRows shows what reached the bench's webhook endpoints; nothing when it registered none.
func (r *Report) webhookRows(t table) {
	w := r.Webhooks
	if w == nil {
		return
	}
	t.row(fmt.Sprintf("WEBHOOKS (%d healthy %s)", w.Endpoints, plural(w.Endpoints, "endpoint", "endpoints")), "", "")
	waited := fmt.Sprintf("waited %s after the drain", secs(w.WaitSeconds))
	if w.WaitTimedOut {
		waited += ", gave up"
	}
	t.row("  arrived", fmt.Sprintf("%d of %d events, %d missing", w.Arrived, w.Expected, w.Missing), rate(w.ArrivedPerSec)+" end to end, "+waited)
	t.row("  refused", fmt.Sprintf("%d bad signatures, %d undecodable", w.BadSignatures, w.Undecodable), "")
	t.row("  duplicates", fmt.Sprintf("%d duplicates, %d unexpected", w.Duplicates, w.Unexpected), "")
	t.row("  event→arrival", webhookPcts(w.EventToArrival), fmt.Sprintf("n=%d, event's time in the log → arrival", w.EventToArrival.Count))
	if f := w.Failing; f != nil {
		t.row("  failing endpoint", fmt.Sprintf("%d requests for %d events, %d untried", f.Requests, f.Events, f.Untried), "answers 500; probed once it trips")
		t.row("    event→1st attempt", webhookPcts(f.EventToFirstAttempt), fmt.Sprintf("n=%d", f.EventToFirstAttempt.Count))
	}
}

// webhookPcts is a latency's p50, p90, p99 and max.
func webhookPcts(s Summary) string {
	if s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s", ms(s.P50MS), ms(s.P90MS), ms(s.P99MS), ms(s.MaxMS))
}

// statusRows shows what watching the sample on the status API saw; nothing when no
// notification was sampled.
func (r *Report) statusRows(t table) {
	st := r.Status
	if st.SampleEvery <= 0 {
		return
	}
	t.row(fmt.Sprintf("STATUS API (1 notification in %d)", st.SampleEvery), "", "")
	t.row("  watched", fmt.Sprintf("%d sampled: %d sent, %d failed, %d not seen", st.Sampled, st.SeenSent, st.SeenFailed, st.NotSeen),
		fmt.Sprintf("%d status + %d events GETs, %d errors, poll gap %s", st.StatusGETs, st.EventsGETs, st.GETErrors, ms(st.MeanPollGapMS)))
	t.row("  accept→sent", pcts(st.AcceptToSent, false), "202 → status says sent")
	t.row("  projection lag", pcts(st.ProjectionLag, false), fmt.Sprintf("NotificationSent time → status says sent; %d via log fold", st.SentViaLogFold))
}

// outcomeRows shows where the accepted notifications ended, and how long the drain took.
func (r *Report) outcomeRows(t table) {
	o := r.Outcome
	t.row("OUTCOME ("+o.Source+")", "", "")
	if !o.Settled {
		t.row("  terminal", "not settled: the run was interrupted", "")
		return
	}
	drain := fmt.Sprintf("drained in %s", secs(o.DrainSeconds))
	if o.DrainTimedOut {
		drain = fmt.Sprintf("drain gave up after %s", secs(o.DrainSeconds))
	}
	t.row("  terminal", fmt.Sprintf("%d sent, %d failed, %d lost of %d accepted", o.Sent, o.Failed, o.Lost, o.Accepted), drain)
}

// memoryRows shows the memory and CPU of Herald's processes, the services and the bench, when
// they were measured (spawn mode).
func (r *Report) memoryRows(t table) {
	m := r.Memory
	if m == nil {
		return
	}
	t.row("MEMORY (resident)", "peak (VmHWM)", "max sampled / CPU")
	for _, p := range m.Processes {
		t.row(fmt.Sprintf("  herald %s (pid %d)", p.Role, p.PID), mib(p.PeakRSS), fmt.Sprintf("%s / %s CPU", mib(p.MaxSampledRSS), secs(p.CPUSeconds)))
	}
	if len(m.Processes) > 1 {
		t.row("  herald, all processes", mib(m.PeakRSSSum)+" (sum of peaks)", mib(m.MaxSampledRSS)+" at once")
	}
	t.row("  postgresql (PSS)", mib(m.PostgresPSS), "server + this database's backends")
	t.row("  rabbitmq (PSS)", mib(m.RabbitMQPSS), "whole broker")
	t.row("  bench itself", mib(m.BenchPeakRSS), secs(m.BenchCPUSeconds)+" CPU during the load")
}

// ceilingRows shows the raw ceiling and Herald's delivered rate as a share of it, when it was
// measured.
func (r *Report) ceilingRows(t table) {
	c := r.Ceiling
	if c == nil {
		return
	}
	t.row(fmt.Sprintf("RAW CEILING (same services, %s each)", secs(c.Seconds)), "", "")
	if c.Error != "" {
		t.row("  failed", c.Error, "")
	}
	if sk := c.Skeleton; sk != nil {
		t.row(fmt.Sprintf("  skeleton, %d clients, %d workers", sk.Clients, sk.Workers),
			fmt.Sprintf("delivered %s", rate(sk.DeliveredPerSec)),
			fmt.Sprintf("%d accepted, %d delivered", sk.Accepted, sk.Delivered))
		t.row("  delivered/s ÷ skeleton delivered/s", ratio(c.DeliveredOverSkeleton), "Herald's share of the work its guarantees need")
	}
	if a := c.AMQP; a != nil {
		t.row(fmt.Sprintf("  AMQP quorum queue, %d publishers", a.Publishers),
			fmt.Sprintf("published %s (confirms, window %d)", rate(a.PublishedPerSec), a.ConfirmWindow),
			fmt.Sprintf("consumed %s (manual ack, prefetch %d)", rate(a.ConsumedPerSec), a.Prefetch))
	}
	if len(c.Postgres) > 0 {
		var clients, rates []string
		for _, p := range c.Postgres {
			clients = append(clients, fmt.Sprint(p.Clients))
			rates = append(rates, num(p.InsertsPer))
		}
		t.row("  PG single-row INSERT commits", strings.Join(rates, " / ")+" /s", strings.Join(clients, " / ")+" clients")
	}
	t.row("  delivered/s ÷ AMQP consumed/s", ratio(c.DeliveredOverAMQP), "")
	t.row("  delivered/s ÷ (best PG commits/s ÷ 4)", ratio(c.DeliveredOverPGCommits), "")
}

// writeVerdict lists the problems and warnings, where the logs were kept, and the result.
func (r *Report) writeVerdict(b *strings.Builder) {
	for _, p := range r.Problems {
		fmt.Fprintf(b, "PROBLEM: %s\n", p)
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(b, "warning: %s\n", wn)
	}
	if r.LogDir != "" {
		fmt.Fprintf(b, "logs: %s\n", r.LogDir)
	}
	if r.OK {
		b.WriteString("result: ok\n")
	} else {
		b.WriteString("result: FAILED\n")
	}
}

// trimTrailingSpaces removes the padding tabwriter leaves at the end of rows whose last cells
// are empty.
func trimTrailingSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(line, " ")
	}
	return strings.Join(lines, "\n")
}

// pcts formats a latency summary as its percentiles; the API's with p95 and without the count
// (the next cell has it), the others with the count and without p95. "-" when empty.
func pcts(s Summary, p95 bool) string {
	if s.Count == 0 {
		return "-"
	}
	if p95 {
		return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", ms(s.P50MS), ms(s.P95MS), ms(s.P99MS), ms(s.MaxMS))
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", ms(s.P50MS), ms(s.P99MS), ms(s.MaxMS), s.Count)
}

// errorsCell is the count of refused and failed POSTs, followed by how many of each kind.
func errorsCell(l Load) string {
	if l.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d: %s", l.Errors, strings.Join(countsByKind(l.ErrorsByKind), ", "))
}

// countsByKind formats each kind's count as "kind ×n", in the order of the kinds' names, so
// that two runs list their errors alike.
func countsByKind(byKind map[string]int64) []string {
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, byKind[k]))
	}
	return parts
}

// ms formats milliseconds with three significant digits or so.
func ms(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fs", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

// secs formats seconds to a tenth.
func secs(v float64) string { return fmt.Sprintf("%.1fs", v) }

// num formats a rate: whole above 100, to a tenth below, where the tenth still says something.
func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// rate formats a rate per second.
func rate(v float64) string { return num(v) + "/s" }

// ratio formats Herald's share of a ceiling as a fraction and a percentage, or "-" when it was
// not measured.
func ratio(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f (%.1f%%)", *v, 100**v)
}

// orDash stands in "-" for a figure that is unknown, so that a column is never blank.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// costRows shows what a notification cost PostgreSQL and RabbitMQ, Herald's run beside the
// skeleton's, when they were counted (spawn mode).
func (r *Report) costRows(t table) {
	c := r.Cost
	if c == nil || (c.Herald == nil && c.Skeleton == nil) {
		return
	}
	h, s := c.Herald, c.Skeleton
	t.row("COST PER NOTIFICATION", "herald"+costOf(h), "skeleton"+costOf(s))
	both := func(label string, f func(*CostFigures) string) {
		t.row("  "+label, costCell(h, f), costCell(s, f))
	}
	both("PG commits", func(f *CostFigures) string {
		if f.IdleCommitsPerSec > 0 && f.Notifications > 0 {
			idle := f.IdleCommitsPerSec * f.Seconds / float64(f.Notifications)
			return fmt.Sprintf("%.2f (≈%.2f idle polling)", f.Commits, idle)
		}
		return fmt.Sprintf("%.2f", f.Commits)
	})
	both("PG rollbacks", func(f *CostFigures) string { return fmt.Sprintf("%.2f", f.Rollbacks) })
	both("PG rows written (ins/upd/del)", func(f *CostFigures) string {
		return fmt.Sprintf("%.2f (%.2f/%.2f/%.2f)", f.RowsWritten, f.RowsInserted, f.RowsUpdated, f.RowsDeleted)
	})
	both("PG rows fetched", func(f *CostFigures) string { return fmt.Sprintf("%.2f", f.RowsFetched) })
	both("statements", func(f *CostFigures) string {
		if f.Statements == nil {
			return f.StatementsNote
		}
		return fmt.Sprintf("%.2f", *f.Statements)
	})
	both("AMQP publishes / confirms", func(f *CostFigures) string { return fmt.Sprintf("%.2f / %.2f", f.Publishes, f.Confirms) })
	both("AMQP deliveries / acks", func(f *CostFigures) string { return fmt.Sprintf("%.2f / %.2f", f.Deliveries, f.Acks) })
	both("AMQP redelivered / unroutable", func(f *CostFigures) string { return fmt.Sprintf("%.2f / %.2f", f.Redeliveries, f.Unroutable) })
	cpuCostRows(t, h, s)
	if (h != nil && len(h.Tables) > 0) || (s != nil && len(s.Tables) > 0) {
		t.row("  PG rows written by table", "", "")
	}
	for _, f := range []*CostFigures{h, s} {
		if f == nil {
			continue
		}
		for _, tc := range f.Tables {
			cell := fmt.Sprintf("%.2f rows", tc.RowsWritten)
			if f == h {
				t.row("    "+tc.Table, cell, "")
			} else {
				t.row("    "+tc.Table, "", cell)
			}
		}
		for _, st := range f.TopStatements {
			cell := fmt.Sprintf("%.2f calls", st.Calls)
			if f == h {
				t.row("    "+st.Query, cell, "")
			} else {
				t.row("    "+st.Query, "", cell)
			}
		}
	}
	for i, f := range []*CostFigures{h, s} {
		if f != nil && f.Error != "" {
			t.row("  "+[]string{"herald", "skeleton"}[i]+" not fully counted", f.Error, "")
		}
	}
}

// cpuCostRows shows where the machine's CPU went per notification, over the window the counts
// above cover (each column's own: --help says which), and beside each figure what the window
// would have cost with nothing sent, at the rate measured just before the load. The skeleton
// runs in the bench process: its column has no Herald, and its bench row is the skeleton with
// the bench's own work. The labels say what each group holds: it is not "this run's" and "the
// rest" (cpu.go).
func cpuCostRows(t table, h, s *CostFigures) {
	if (h == nil || h.CPUSeconds == nil) && (s == nil || s.CPUSeconds == nil) {
		return
	}
	cell := func(f *CostFigures, v func(CPUSplit) float64, note string) string {
		if f == nil || f.Notifications <= 0 || f.CPU == nil {
			return "-"
		}
		out := fmt.Sprintf("%.2f", v(*f.CPU))
		if f.IdleCPU != nil {
			out += fmt.Sprintf(" (≈%.2f idle)", v(*f.IdleCPU))
		}
		return out + note
	}
	window := func(f *CostFigures, what string) string {
		if f == nil || f.CPUSeconds == nil {
			return "-"
		}
		return fmt.Sprintf("%s, %s", secs(f.Seconds), what)
	}
	t.row("  CPU window", window(h, "settled before → after the load"), window(s, "settled before → after the skeleton"))
	idleRate := func(f *CostFigures) string {
		if f == nil || f.IdleCPUPerSec == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f ms/s busy", f.IdleCPUPerSec.Machine)
	}
	if (h != nil && h.IdleCPUPerSec != nil) || (s != nil && s.IdleCPUPerSec != nil) {
		t.row("  idle CPU, before the load", idleRate(h), idleRate(s))
	}
	t.row("  CPU (ms), machine busy", cell(h, func(c CPUSplit) float64 { return c.Machine }, ""), cell(s, func(c CPUSplit) float64 { return c.Machine }, ""))
	skelHerald := "-"
	if s != nil && s.CPU != nil && s.Notifications > 0 {
		skelHerald = "- (runs in bench)"
	}
	t.row("    herald", cell(h, func(c CPUSplit) float64 { return c.Herald }, ""), skelHerald)
	t.row("    PostgreSQL (run db + cluster-wide)", cell(h, func(c CPUSplit) float64 { return c.PostgreSQL }, ""), cell(s, func(c CPUSplit) float64 { return c.PostgreSQL }, ""))
	t.row("    RabbitMQ (whole broker VM)", cell(h, func(c CPUSplit) float64 { return c.RabbitMQ }, ""), cell(s, func(c CPUSplit) float64 { return c.RabbitMQ }, ""))
	t.row("    bench", cell(h, func(c CPUSplit) float64 { return c.Bench }, ""), cell(s, func(c CPUSplit) float64 { return c.Bench }, " (skeleton + bench)"))
	t.row("    other (rest of busy time)", cell(h, func(c CPUSplit) float64 { return c.Other }, ""), cell(s, func(c CPUSplit) float64 { return c.Other }, ""))
	stole := func(f *CostFigures) bool { return f != nil && f.CPU != nil && f.CPU.Steal > 0 }
	if stole(h) || stole(s) {
		t.row("  CPU (ms) stolen (not busy)", cell(h, func(c CPUSplit) float64 { return c.Steal }, ""), cell(s, func(c CPUSplit) float64 { return c.Steal }, ""))
	}
}

// costOf is the heading of a run's column: what its figures are divided by.
func costOf(f *CostFigures) string {
	if f == nil {
		return " (not measured)"
	}
	return fmt.Sprintf(" (÷ %d delivered)", f.Notifications)
}

// costCell is one figure of a run, or "-" when the run was not counted.
func costCell(f *CostFigures, cell func(*CostFigures) string) string {
	if f == nil || f.Notifications <= 0 {
		return "-"
	}
	return cell(f)
}
