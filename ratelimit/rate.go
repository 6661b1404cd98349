// Package ratelimit owns the rate limits held across processes together: how many sends a
// provider takes per unit of time, across every worker process, and how many requests an API key
// may make per window, across every API process. The shared state is a token bucket per provider
// or key in PostgreSQL. For a provider, each process hands the tokens it takes to its own
// waiters, the most urgent first but with a share for the lower priorities, and no wait lasts
// longer than the limiter's longest wait; for API keys, each leases a few at a time and hands
// them out locally.
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/herald-notify/herald"
)

// Rate is a number of sends per period. The zero Rate is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.N == 0 }

// PerSecond is r in sends per second.
func (r Rate) PerSecond() float64 {
	if r.Unlimited() {
		return math.Inf(1)
	}
	return float64(r.N) / r.Per.Seconds()
}

// Burst is how many sends may go at once, above the rate, after an idle spell: a tenth of a
// second's worth, and at least one. Over any window of length T, a provider gets at most
// Burst + T × rate sends, from all the workers together.
func (r Rate) Burst() int {
	return max(1, int(r.PerSecond()/10))
}

// String renders r as it is written in the settings ("100/s"), or "unlimited".
func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// ParseRate reads a rate written as N/s, N/m or N/h (N a whole number above 0); empty is no
// limit. Anything else is an EINVALID error saying what is wanted.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rate{}, nil
	}
	bad := func(why string) (Rate, error) {
		return Rate{}, herald.Errorf(herald.EINVALID, "rate %q: %s: want N/s, N/m or N/h, e.g. 100/s, or empty for no limit", s, why)
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return bad("no unit")
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil {
		return bad("the count is not a whole number")
	}
	if n < 1 {
		return bad("the count must be at least 1")
	}
	per, ok := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[strings.TrimSpace(unit)]
	if !ok {
		return bad("unknown unit " + strconv.Quote(unit))
	}
	return Rate{N: n, Per: per}, nil
}
