package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// Proofs proves a notification's events against the event log's signed checkpoints.
type Proofs interface {
	// ProveNotification returns the proofs of the notification's events the latest checkpoint
	// covers, and how many of its events come after it. An error wrapping ledger.ErrNotFound
	// means the log has no such notification: no stream, or one that is not a notification's
	// (ledger.ProveNotification).
	ProveNotification(ctx context.Context, id string) ([]*ledger.Proof, int, error)
}

// DefaultProofConcurrency is how many proofs a process computes at once. Each reads the hashes
// of the whole log up to the checkpoint (about a second per million events) on a pool
// connection: a few read keys asking at once must not take the connections /send needs. A
// request beyond them is answered 429 with Retry-After.
const DefaultProofConcurrency = 2

// DefaultProofTimeout is how long one proof may take: under the server's 30 s write timeout, so
// that a proof too slow is answered 503 rather than cut off.
const DefaultProofTimeout = 20 * time.Second

// proofRetryAfter is what a request refused for want of a free slot is told to wait: about one
// proof's time.
const proofRetryAfter = "2"

// WithProofs adds GET /api/v1/notifications/{id}/proof to s, under the read scope.
func (s *Server) WithProofs(p Proofs) *Server {
	s.proofs = p
	n := s.cfg.ProofConcurrency
	if n <= 0 {
		n = DefaultProofConcurrency
	}
	s.proofSlots = make(chan struct{}, n)
	return s
}

// proof serves GET /api/v1/notifications/{id}/proof: a bundle for each of the notification's
// events a signed checkpoint covers, each checkable offline with the sealer's public key. At
// most ProofConcurrency at once (429 beyond), each within ProofTimeout (503 beyond).
func (s *Server) proof(w http.ResponseWriter, r *http.Request) {
	select {
	case s.proofSlots <- struct{}{}:
		defer func() { <-s.proofSlots }()
	default:
		w.Header().Set("Retry-After", proofRetryAfter)
		s.writeError(w, r, &herald.Error{Code: herald.ERATELIMITED,
			Message: "as many proofs as this server computes at once are being computed; retry after the time in Retry-After"})
		return
	}
	timeout := s.cfg.ProofTimeout
	if timeout <= 0 {
		timeout = DefaultProofTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	id := pathID(r)
	proofs, unsealed, err := s.proofs.ProveNotification(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		err = &herald.Error{Code: herald.ENOTFOUND, Message: "notification " + id + " not found", Err: err}
	case err != nil && ctx.Err() != nil && r.Context().Err() == nil:
		w.Header().Set("Retry-After", proofRetryAfter)
		err = &herald.Error{Code: herald.EUNAVAILABLE, Message: fmt.Sprintf("the proof took longer than %s and was abandoned", timeout), Err: err}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotificationProof(id, proofs, unsealed))
}
