package http

import "github.com/go-chi/chi/v5"

// Operator is what operators do to failed notifications (see handlers.Operator).
type Operator interface{}

func (s *Server) poisonRoutes(r chi.Router) {}
