package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald/ledger"
)

// Checkpoint is a signed checkpoint of the event log: `herald checkpoints list -o json`, and each
// line of the checkpoint file (HERALD_CHECKPOINT_FILE) a witness keeps. Hashes are hex; the
// signature is base64 (standard), over ledger.Checkpoint.SignedMessage.
type Checkpoint struct {
	SignedCheckpoint
	// Frontier is the tree's compact frontier: the roots of its perfect subtrees, largest first.
	// The signature does not cover it (it follows from the events the root commits to).
	Frontier []string `json:"frontier"`
}

// SignedCheckpoint is a checkpoint as a proof bundle carries it: what its signature covers, and
// the signature. The frontier is left out: an inclusion proof needs only the root, and a field
// the verifier of a bundle does not check has no place in it.
type SignedCheckpoint struct {
	// LogID is the identity of the log the checkpoint is of (signed).
	LogID             string    `json:"log_id"`
	Seq               int64     `json:"seq"`
	TreeSize          int64     `json:"tree_size"`
	LastTransactionID uint64    `json:"last_transaction_id"`
	LastPosition      int64     `json:"last_position"`
	Root              string    `json:"root"`
	KeyID             string    `json:"key_id"`
	Signature         string    `json:"signature"`
	CreatedAt         time.Time `json:"created_at"`
}

// NewCheckpoint returns the checkpoint as users see it.
func NewCheckpoint(cp ledger.Checkpoint) Checkpoint {
	frontier := make([]string, 0, len(cp.Frontier)/ledger.HashSize)
	for i := 0; i+ledger.HashSize <= len(cp.Frontier); i += ledger.HashSize {
		frontier = append(frontier, hex.EncodeToString(cp.Frontier[i:i+ledger.HashSize]))
	}
	return Checkpoint{SignedCheckpoint: NewSignedCheckpoint(cp), Frontier: frontier}
}

// NewSignedCheckpoint returns the checkpoint as a proof bundle carries it.
func NewSignedCheckpoint(cp ledger.Checkpoint) SignedCheckpoint {
	return SignedCheckpoint{
		LogID: uuid.UUID(cp.LogID).String(), Seq: cp.Seq, TreeSize: cp.TreeSize, LastTransactionID: cp.LastTransactionID, LastPosition: cp.LastPosition,
		Root: hex.EncodeToString(cp.Root[:]), KeyID: cp.KeyID, Signature: base64.StdEncoding.EncodeToString(cp.Signature),
		CreatedAt: cp.CreatedAt.UTC(),
	}
}

// Checkpoint reads the checkpoint back, refusing a malformed one with the field at fault.
func (c Checkpoint) Checkpoint() (ledger.Checkpoint, error) {
	cp, err := c.SignedCheckpoint.Checkpoint()
	if err != nil {
		return cp, err
	}
	for i, f := range c.Frontier {
		h, err := parseHash(f)
		if err != nil {
			return cp, fmt.Errorf("frontier[%d]: %w", i, err)
		}
		cp.Frontier = append(cp.Frontier, h[:]...)
	}
	return cp, nil
}

// Checkpoint reads the checkpoint back (without a frontier), refusing a malformed one with the
// field at fault.
func (c SignedCheckpoint) Checkpoint() (ledger.Checkpoint, error) {
	cp := ledger.Checkpoint{Seq: c.Seq, TreeSize: c.TreeSize, LastTransactionID: c.LastTransactionID,
		LastPosition: c.LastPosition, KeyID: c.KeyID, CreatedAt: c.CreatedAt}
	logID, err := uuid.Parse(c.LogID)
	if err != nil {
		return cp, fmt.Errorf("log_id: %w", err)
	}
	cp.LogID = logID
	if cp.Root, err = parseHash(c.Root); err != nil {
		return cp, fmt.Errorf("root: %w", err)
	}
	if cp.Signature, err = base64.StdEncoding.DecodeString(c.Signature); err != nil {
		return cp, fmt.Errorf("signature: %w", err)
	}
	return cp, nil
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
	SignaturesChecked bool `json:"signatures_checked"`
	// Signers says which key signed which checkpoints whose signature was checked: runs of
	// consecutive checkpoints signed by one key, in seq order (two keys across a rotation).
	Signers []Signer `json:"signers"`
	// KeyUntil are the ranges the signatures were held to (--key-until): each key, up to which
	// checkpoint it is trusted, in the order the ranges end. Empty when none was given.
	KeyUntil []KeyRange `json:"key_until"`
	// Witnessed is how many checkpoints kept outside the database (--witness, --expect) were
	// found in it as kept.
	Witnessed int64 `json:"witnessed"`
	// Subtrees is how many of the sealer's stored subtree roots, from which proofs are built,
	// were recomputed from the log and found equal.
	Subtrees       int64 `json:"subtrees"`
	FromCheckpoint int64 `json:"from_checkpoint"`
	LastCheckpoint int64 `json:"last_checkpoint"`
	// Unsealed is how many events come after the last checkpoint: chained, not yet signed.
	Unsealed       int64   `json:"unsealed"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// EventsPerSecond is 0 for a walk too short to measure (ledger.MinRateElapsed,
	// ledger.MinRateEvents).
	EventsPerSecond float64 `json:"events_per_second"`
	// WitnessFile is what was read of --witness, when one was given.
	WitnessFile *WitnessFile `json:"witness_file,omitempty"`
	Mismatch    *Mismatch    `json:"mismatch,omitempty"`
}

// WitnessFile is what a verification read of a checkpoint file kept outside the database.
type WitnessFile struct {
	File string `json:"file"`
	// Checkpoints is how many of its lines were held to the database (and, with
	// SignaturesChecked, to the keys given); BeforeFromCheckpoint how many, of checkpoints
	// before --from-checkpoint, were read but neither checked nor compared.
	Checkpoints          int64 `json:"checkpoints"`
	SignaturesChecked    bool  `json:"signatures_checked"`
	BeforeFromCheckpoint int64 `json:"before_from_checkpoint"`
	// UnreadLastLineBytes is the length of a last line without a newline that is no whole
	// checkpoint (one being written, or cut short by a crash), left unread; 0 for none.
	UnreadLastLineBytes int `json:"unread_last_line_bytes"`
}

// Signer is a run of consecutive checkpoints signed by one key.
type Signer struct {
	KeyID           string `json:"key_id"`
	FirstCheckpoint int64  `json:"first_checkpoint"`
	LastCheckpoint  int64  `json:"last_checkpoint"`
}

// KeyRange is how far a key is trusted: the checkpoints up to and including UntilCheckpoint.
type KeyRange struct {
	KeyID           string `json:"key_id"`
	UntilCheckpoint int64  `json:"until_checkpoint"`
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
		OK: m == nil, Events: r.Events, Streams: r.Streams, Checkpoints: r.Checkpoints, SignaturesChecked: r.Signed, Witnessed: r.Witnessed,
		Subtrees:       r.Subtrees,
		FromCheckpoint: r.FromCheckpoint, LastCheckpoint: r.LastCheckpoint, Unsealed: r.Unsealed,
		ElapsedSeconds: r.Elapsed.Seconds(), EventsPerSecond: r.Rate(),
		Signers:  make([]Signer, len(r.Signers)),
		KeyUntil: make([]KeyRange, 0, len(r.KeyUntil)),
	}
	for i, sr := range r.Signers {
		v.Signers[i] = Signer{KeyID: sr.KeyID, FirstCheckpoint: sr.First, LastCheckpoint: sr.Last}
	}
	for _, id := range r.KeyUntil.IDs() {
		v.KeyUntil = append(v.KeyUntil, KeyRange{KeyID: id, UntilCheckpoint: r.KeyUntil[id]})
	}
	if m != nil {
		v.Unsealed = 0
		v.Mismatch = &Mismatch{Position: m.Position, Stream: m.Stream, Version: m.Version, Checkpoint: m.Checkpoint, Field: m.Field, Reason: m.Reason}
	}
	return v
}

// ProofBundle is what `herald events prove` writes and `herald verify-bundle` checks: an event as
// its hash covers it, the inclusion path from it to a checkpoint's root, and the checkpoint. The
// event's data and metadata are strings holding the exact text that was hashed (jsonb's
// rendering), since re-encoding JSON could change a byte; hashes are hex.
type ProofBundle struct {
	Event      ProvenEvent      `json:"event"`
	LeafIndex  uint64           `json:"leaf_index"`
	Path       []string         `json:"path"`
	Checkpoint SignedCheckpoint `json:"checkpoint"`
}

// ProvenEvent is an event with everything its chain hash covers.
type ProvenEvent struct {
	ID            string `json:"id"`
	StreamID      string `json:"stream_id"`
	Version       int64  `json:"version"`
	Type          string `json:"type"`
	Position      int64  `json:"position"`
	TransactionID uint64 `json:"transaction_id"`
	// OccurredAtMicros is the time as hashed: microseconds since the Unix epoch.
	OccurredAtMicros int64  `json:"occurred_at_us"`
	Data             string `json:"data"`
	Metadata         string `json:"metadata"`
	Hash             string `json:"hash"`
	// PreviousHash is the hash of the stream's previous version; empty for version 1.
	PreviousHash string `json:"previous_hash,omitempty"`
}

// NewProofBundle returns the proof as users see it.
func NewProofBundle(p *ledger.Proof) ProofBundle {
	path := make([]string, len(p.Path))
	for i, h := range p.Path {
		path[i] = hex.EncodeToString(h[:])
	}
	return ProofBundle{Event: NewProvenEvent(p), LeafIndex: p.LeafIndex, Path: path, Checkpoint: NewSignedCheckpoint(p.Checkpoint)}
}

// NewProvenEvent returns the event of p with its chain (its hash and its previous hash).
func NewProvenEvent(p *ledger.Proof) ProvenEvent {
	e := ProvenEvent{
		ID: uuid.UUID(p.Event.ID).String(), StreamID: uuid.UUID(p.Event.Stream).String(), Version: p.Event.Version,
		Type: p.Event.Type, Position: p.Position, TransactionID: p.TransactionID, OccurredAtMicros: p.Event.Occurred.UnixMicro(),
		Data: string(p.Event.Data), Metadata: string(p.Event.Metadata), Hash: hex.EncodeToString(p.Hash[:]),
	}
	if p.Event.Version > 1 {
		e.PreviousHash = hex.EncodeToString(p.Prev[:])
	}
	return e
}

// Proof reads the bundle back into the proof it shows, refusing a malformed one with the
// field at fault.
func (b ProofBundle) Proof() (*ledger.Proof, error) {
	p, err := b.Event.proof("event.")
	if err != nil {
		return nil, err
	}
	p.LeafIndex = b.LeafIndex
	for i, s := range b.Path {
		h, err := parseHash(s)
		if err != nil {
			return nil, fmt.Errorf("path[%d]: %w", i, err)
		}
		p.Path = append(p.Path, h)
	}
	if p.Checkpoint, err = b.Checkpoint.Checkpoint(); err != nil {
		return nil, fmt.Errorf("checkpoint.%w", err)
	}
	return p, nil
}

// proof reads the event back, without a path or checkpoint; field prefixes its fields' names in
// errors.
func (e ProvenEvent) proof(field string) (*ledger.Proof, error) {
	p := &ledger.Proof{Position: e.Position, TransactionID: e.TransactionID}
	id, err := uuid.Parse(e.ID)
	if err != nil {
		return nil, fmt.Errorf("%sid: %w", field, err)
	}
	stream, err := uuid.Parse(e.StreamID)
	if err != nil {
		return nil, fmt.Errorf("%sstream_id: %w", field, err)
	}
	p.Event = ledger.ChainedEvent{ID: id, Stream: stream, Version: e.Version, Type: e.Type,
		Occurred: time.UnixMicro(e.OccurredAtMicros).UTC(), Data: []byte(e.Data), Metadata: []byte(e.Metadata)}
	if p.Hash, err = parseHash(e.Hash); err != nil {
		return nil, fmt.Errorf("%shash: %w", field, err)
	}
	if e.Version > 1 {
		if p.Prev, err = parseHash(e.PreviousHash); err != nil {
			return nil, fmt.Errorf("%sprevious_hash: %w", field, err)
		}
	}
	return p, nil
}

func parseHash(s string) (ledger.Hash, error) {
	var h ledger.Hash
	b, err := hex.DecodeString(s)
	if err != nil {
		return h, err
	}
	if len(b) != ledger.HashSize {
		return h, fmt.Errorf("%d bytes, want %d", len(b), ledger.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// NotificationProof is GET /api/v1/notifications/{id}/proof: a proof bundle for each of the
// notification's events a signed checkpoint covers, in version order (each checked on its own by
// `herald verify-bundle`), and how many of its events no checkpoint covers yet.
type NotificationProof struct {
	NotificationID string        `json:"notification_id"`
	Proofs         []ProofBundle `json:"proofs"`
	Unsealed       int           `json:"unsealed"`
}

// NewNotificationProof returns the proofs of notification id as users see them.
func NewNotificationProof(id string, proofs []*ledger.Proof, unsealed int) NotificationProof {
	return NotificationProof{NotificationID: id, Proofs: all(proofs, NewProofBundle), Unsealed: unsealed}
}

// StreamExport is what `herald events export` writes: a stream's events with their chain, in
// version order, and, with --proof, a proof bundle for each event the latest checkpoint covers
// (each checked on its own by `herald verify-bundle`) and how many it does not cover yet.
type StreamExport struct {
	StreamID string        `json:"stream_id"`
	Events   []ProvenEvent `json:"events"`
	Proofs   []ProofBundle `json:"proofs,omitempty"`
	Unsealed int           `json:"unsealed"`
}

// NewStreamExport returns the export of stream as users see it.
func NewStreamExport(stream string, e *ledger.Export) StreamExport {
	return StreamExport{StreamID: stream, Events: all(e.Events, NewProvenEvent), Proofs: all(e.Proofs, NewProofBundle), Unsealed: e.Unsealed}
}

// Proofs is what `herald verify-bundle` checks, read from any of the shapes that carry proofs:
// a ProofBundle (herald events prove), a StreamExport (herald events export --proof) or a
// NotificationProof (GET /api/v1/notifications/{id}/proof).
type Proofs struct {
	// Shape names what was read: "bundle", "export" or "notification proof".
	Shape string
	// Stream is the stream of an export or a notification's proof.
	Stream uuid.UUID
	// Events is the chain the proofs are of, from version 1: an export's events, or a
	// notification's proven events (those a checkpoint covers). Empty for a single bundle.
	Events []*ledger.Proof
	Proofs []*ledger.Proof
	// Unsealed is how many of the stream's events the file says no checkpoint covers yet.
	Unsealed int
}

// ReadProofs reads a bundle, an export or a notification's proof, told apart by their fields,
// refusing a field the shape does not have and a malformed value with the field at fault.
func ReadProofs(r io.Reader) (*Proofs, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	decode := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	_, isBundle := fields["event"]
	_, isExport := fields["stream_id"]
	_, isNotification := fields["notification_id"]
	switch {
	case isBundle:
		var b ProofBundle
		if err := decode(&b); err != nil {
			return nil, fmt.Errorf("not a proof bundle: %w", err)
		}
		p, err := b.Proof()
		if err != nil {
			return nil, err
		}
		return &Proofs{Shape: "bundle", Proofs: []*ledger.Proof{p}}, nil
	case isExport:
		var e StreamExport
		if err := decode(&e); err != nil {
			return nil, fmt.Errorf("not an export: %w", err)
		}
		out := &Proofs{Shape: "export", Unsealed: e.Unsealed}
		if out.Stream, err = uuid.Parse(e.StreamID); err != nil {
			return nil, fmt.Errorf("stream_id: %w", err)
		}
		for i, ev := range e.Events {
			p, err := ev.proof(fmt.Sprintf("events[%d].", i))
			if err != nil {
				return nil, err
			}
			out.Events = append(out.Events, p)
		}
		if out.Proofs, err = readBundles(e.Proofs); err != nil {
			return nil, err
		}
		return out, nil
	case isNotification:
		var n NotificationProof
		if err := decode(&n); err != nil {
			return nil, fmt.Errorf("not a notification's proof: %w", err)
		}
		out := &Proofs{Shape: "notification proof", Unsealed: n.Unsealed}
		if out.Stream, err = uuid.Parse(n.NotificationID); err != nil {
			return nil, fmt.Errorf("notification_id: %w", err)
		}
		if out.Proofs, err = readBundles(n.Proofs); err != nil {
			return nil, err
		}
		out.Events = out.Proofs
		return out, nil
	}
	return nil, errors.New(`neither a proof bundle ("event"), an export ("stream_id") nor a notification's proof ("notification_id")`)
}

func readBundles(bs []ProofBundle) ([]*ledger.Proof, error) {
	var out []*ledger.Proof
	for i, b := range bs {
		p, err := b.Proof()
		if err != nil {
			return nil, fmt.Errorf("proofs[%d].%w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}
