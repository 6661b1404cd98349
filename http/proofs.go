package http

import (
	"context"
	"errors"
	"net/http"

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

// WithProofs adds GET /api/v1/notifications/{id}/proof to s, under the read scope.
func (s *Server) WithProofs(p Proofs) *Server {
	s.proofs = p
	return s
}

// proof serves GET /api/v1/notifications/{id}/proof: a bundle for each of the notification's
// events a signed checkpoint covers, each checkable offline with the sealer's public key.
func (s *Server) proof(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	proofs, unsealed, err := s.proofs.ProveNotification(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		err = &herald.Error{Code: herald.ENOTFOUND, Message: "notification " + id + " not found", Err: err}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewNotificationProof(id, proofs, unsealed))
}
