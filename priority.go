package herald

// Priority is how urgently a notification should be delivered. Each priority has a lane of its
// own on the broker, with consumers of its own, so a backlog of one does not delay another; and
// among the waiters for a provider's rate limit, higher priorities go first.
type Priority string

const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Priorities lists every priority, most urgent first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// ParsePriority returns the priority named s; empty is normal. Anything else is an EINVALID
// error.
func ParsePriority(s string) (Priority, error) {
	switch p := Priority(s); p {
	case "":
		return PriorityNormal, nil
	case PriorityHigh, PriorityNormal, PriorityLow:
		return p, nil
	}
	return "", Errorf(EINVALID, "unknown priority %q: want high, normal or low", s)
}

// OrNormal returns p, or normal when p is empty: events written before there were priorities,
// and commands queued then, carry none.
func (p Priority) OrNormal() Priority {
	if p == "" {
		return PriorityNormal
	}
	return p
}

// Rank orders priorities for waiting: 0 is served first.
func (p Priority) Rank() int {
	switch p.OrNormal() {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 2
	}
	return 1
}
