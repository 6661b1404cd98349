package bounces

import "github.com/herald-notify/herald/wire"

// WireReport returns r as users see it; its raw message only when withRaw.
func WireReport(r Inbound, withRaw bool) wire.InboundReport {
	out := wire.InboundReport{
		ID: r.ID, ReceivedAt: r.ReceivedAt.UTC(), RemoteAddr: r.RemoteAddr, EnvelopeFrom: r.EnvelopeFrom,
		EnvelopeTo: append([]string{}, r.EnvelopeTo...), Size: r.Size, Truncated: r.Truncated, MessageID: r.MessageID,
		Outcome: r.Outcome, NotificationID: r.NotificationID, Detail: r.Detail,
	}
	if withRaw {
		raw := string(r.Raw)
		out.Raw = &raw
	}
	return out
}

// WireReports returns a page of reports, continued before next (0: the last).
func WireReports(list []Inbound, next int64) wire.InboundReports {
	out := wire.InboundReports{Reports: make([]wire.InboundReport, 0, len(list)), NextBefore: next}
	for _, r := range list {
		out.Reports = append(out.Reports, WireReport(r, false))
	}
	return out
}
