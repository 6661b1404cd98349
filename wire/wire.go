// Package wire defines every shape Herald shows its users as JSON — the HTTP API's answers, the
// CLI's `-o json` and `-o jsonl` output, webhook payloads, and (as they come) the console's
// views — each as one tagged type with one constructor from the domain. The API and the CLI print
// the same JSON for the same thing because both go through here; a field added to a shape reaches
// every place that shows it.
//
// Times are UTC; a time that may be unset is a pointer and omitted when it is. Lists are never
// null: an empty list is [].
package wire

import "time"

// utc returns t in UTC, or nil when t is the zero time.
func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// all returns f of each of in, in order: an empty list, never nil, for none.
func all[T, U any](in []T, f func(T) U) []U {
	out := make([]U, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return out
}
