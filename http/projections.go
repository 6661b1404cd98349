package http

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/projections"
	"github.com/herald-notify/herald/wire"
)

// Rebuilds runs and reports projection rebuilds (see projections.Jobs).
type Rebuilds interface {
	Statuses(ctx context.Context) ([]projections.ProjectionStatus, error)
	// Start returns ENOTFOUND for an unknown projection, ECONFLICT if one is running already.
	Start(name string, dryRun bool) (projections.Job, error)
	// Job returns ENOTFOUND for an unknown job.
	Job(id string) (projections.Job, error)
	Recent() []projections.Job
}

// WithRebuilds adds the projection endpoints (status and rebuilds) to s, under the operate scope.
func (s *Server) WithRebuilds(r Rebuilds) *Server {
	s.rebuilds = r
	return s
}

// projectionRoutes mounts the read models' endpoints.
func (s *Server) projectionRoutes(r chi.Router) {
	r.Get("/", s.projectionStatuses)
	r.Post("/{name}/rebuild", s.startRebuild)
	r.Get("/rebuilds/{job}", s.rebuildJob)
}

// projectionStatuses serves GET /api/v1/projections: where each read model stands, and the
// rebuilds this process ran lately.
func (s *Server) projectionStatuses(w http.ResponseWriter, r *http.Request) {
	statuses, err := s.rebuilds.Statuses(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewProjections(statuses, s.rebuilds.Recent()))
}

// startRebuild serves POST /api/v1/projections/{name}/rebuild: start a rebuild (or a dry run)
// in the background and answer 202 with the job to follow.
func (s *Server) startRebuild(w http.ResponseWriter, r *http.Request) {
	body, err := readObject(r, w, s.cfg.MaxBodyBytes, "dry_run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var dryRun bool
	if v, ok := body["dry_run"]; ok {
		if err := json.Unmarshal(v, &dryRun); err != nil {
			s.writeError(w, r, herald.Invalid("the request is invalid", map[string]string{"dry_run": "must be true or false, not " + jsonValueKind(v)}))
			return
		}
	}
	job, err := s.rebuilds.Start(chi.URLParam(r, "name"), dryRun)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := wire.NewRebuildJob(job)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusAccepted, out)
}

// rebuildJob serves GET /api/v1/projections/rebuilds/{job}: the job now.
func (s *Server) rebuildJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.rebuilds.Job(chi.URLParam(r, "job"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.NewRebuildJob(job))
}
