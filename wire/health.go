package wire

// Health is GET /healthz: the process is up.
type Health struct {
	Status string `json:"status"`
}

// Readiness is GET /readyz: ready when every check passed, not_ready when one failed; Checks
// says of each dependency "ok" or what failed.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readiness statuses.
const (
	Ready    = "ready"
	NotReady = "not_ready"
)

// NewHealth returns the answer of a process that is up.
func NewHealth() Health { return Health{Status: "ok"} }
