package wire

import (
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/herald-notify/herald/ledger"
)

// Checkpoint is a signed checkpoint of the event log: `herald checkpoints list -o json`, and each
// line of the checkpoint file (HERALD_CHECKPOINT_FILE) a witness keeps. Hashes are hex; the
// signature is base64 (standard), over ledger.Checkpoint.SignedMessage.
type Checkpoint struct {
	Seq               int64     `json:"seq"`
	TreeSize          int64     `json:"tree_size"`
	LastTransactionID uint64    `json:"last_transaction_id"`
	LastPosition      int64     `json:"last_position"`
	Root              string    `json:"root"`
	KeyID             string    `json:"key_id"`
	Signature         string    `json:"signature"`
	CreatedAt         time.Time `json:"created_at"`
	// Frontier is the tree's compact frontier: the roots of its perfect subtrees, largest first.
	Frontier []string `json:"frontier"`
}

// NewCheckpoint returns the checkpoint as users see it.
func NewCheckpoint(cp ledger.Checkpoint) Checkpoint {
	frontier := make([]string, 0, len(cp.Frontier)/ledger.HashSize)
	for i := 0; i+ledger.HashSize <= len(cp.Frontier); i += ledger.HashSize {
		frontier = append(frontier, hex.EncodeToString(cp.Frontier[i:i+ledger.HashSize]))
	}
	return Checkpoint{
		Seq: cp.Seq, TreeSize: cp.TreeSize, LastTransactionID: cp.LastTransactionID, LastPosition: cp.LastPosition,
		Root: hex.EncodeToString(cp.Root[:]), KeyID: cp.KeyID, Signature: base64.StdEncoding.EncodeToString(cp.Signature),
		CreatedAt: cp.CreatedAt.UTC(), Frontier: frontier,
	}
}

// Verification is what `herald events verify -o json` reports: what was checked, and, when
// something does not match, the first thing that does not.
type Verification struct {
	OK     bool  `json:"ok"`
	Events int64 `json:"events"`
	// Streams is how many streams began (a version 1) among the events read.
	Streams     int64 `json:"streams"`
	Checkpoints int64 `json:"checkpoints"`
	// SignaturesChecked is false when no public key was given: the trees were checked, the
	// signatures were not.
	SignaturesChecked bool  `json:"signatures_checked"`
	FromCheckpoint    int64 `json:"from_checkpoint"`
	LastCheckpoint    int64 `json:"last_checkpoint"`
	// Unsealed is how many events come after the last checkpoint: chained, not yet signed.
	Unsealed        int64     `json:"unsealed"`
	ElapsedSeconds  float64   `json:"elapsed_seconds"`
	EventsPerSecond float64   `json:"events_per_second"`
	Mismatch        *Mismatch `json:"mismatch,omitempty"`
}

// Mismatch is where the log or its checkpoints first differ from what they commit to.
type Mismatch struct {
	Position   int64  `json:"position,omitempty"`
	Stream     string `json:"stream,omitempty"`
	Version    int64  `json:"version,omitempty"`
	Checkpoint int64  `json:"checkpoint,omitempty"`
	Field      string `json:"field"`
	Reason     string `json:"reason"`
}

// NewVerification returns a verification's report; m is its mismatch, nil when all matched.
func NewVerification(r ledger.VerifyReport, m *ledger.Mismatch) Verification {
	v := Verification{
		OK: m == nil, Events: r.Events, Streams: r.Streams, Checkpoints: r.Checkpoints, SignaturesChecked: r.Signed,
		FromCheckpoint: r.FromCheckpoint, LastCheckpoint: r.LastCheckpoint, Unsealed: r.Unsealed,
		ElapsedSeconds: r.Elapsed.Seconds(), EventsPerSecond: r.Rate(),
	}
	if m != nil {
		v.Unsealed = 0
		v.Mismatch = &Mismatch{Position: m.Position, Stream: m.Stream, Version: m.Version, Checkpoint: m.Checkpoint, Field: m.Field, Reason: m.Reason}
	}
	return v
}
