package http

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/projections"
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

func (s *Server) projectionRoutes(r chi.Router) {
	r.Get("/", s.projectionStatuses)
	r.Post("/{name}/rebuild", s.startRebuild)
	r.Get("/rebuilds/{job}", s.rebuildJob)
}

type projectionStatusJSON struct {
	Name     string `json:"name"`
	Position int64  `json:"position"`
	Head     int64  `json:"head"`
	Lag      int64  `json:"lag"`
	// Stopped says where the projection stopped at a gap in a stream's versions, and since when.
	Stopped   string     `json:"stopped,omitempty"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
}

func (s *Server) projectionStatuses(w http.ResponseWriter, r *http.Request) {
	statuses, err := s.rebuilds.Statuses(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Projections []projectionStatusJSON `json:"projections"`
		Rebuilds    []jobJSON              `json:"rebuilds"`
	}{Projections: []projectionStatusJSON{}, Rebuilds: []jobJSON{}}
	for _, st := range statuses {
		p := projectionStatusJSON{Name: st.Name, Position: st.Position, Head: st.Head, Lag: st.Lag, Stopped: st.Stopped}
		if st.Stopped != "" {
			p.StoppedAt = &st.StoppedAt
		}
		out.Projections = append(out.Projections, p)
	}
	for _, job := range s.rebuilds.Recent() {
		out.Rebuilds = append(out.Rebuilds, toJobJSON(job))
	}
	writeJSON(w, http.StatusOK, out)
}

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
	out := toJobJSON(job)
	w.Header().Set("Location", out.Links.Self)
	writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) rebuildJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.rebuilds.Job(chi.URLParam(r, "job"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJobJSON(job))
}

type jobJSON struct {
	ID         string     `json:"id"`
	Projection string     `json:"projection"`
	DryRun     bool       `json:"dry_run"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	Progress   struct {
		Applied  int64 `json:"applied"`
		Position int64 `json:"position"`
		Head     int64 `json:"head"`
	} `json:"progress"`
	Report *rebuildReportJSON `json:"report,omitempty"`
	Error  string             `json:"error,omitempty"`
	Links  struct {
		Self string `json:"self"`
	} `json:"links"`
}

// rebuildReportJSON is what a finished rebuild reports.
type rebuildReportJSON struct {
	Events    int64  `json:"events"`
	Rows      int64  `json:"rows"`
	Swapped   bool   `json:"swapped"`
	Compared  bool   `json:"compared"`
	LiveLag   int64  `json:"live_lag"`
	LiveGap   string `json:"live_gap,omitempty"`
	Missing   int64  `json:"missing"`
	Extra     int64  `json:"extra"`
	Different int64  `json:"different"`
}

func toJobJSON(j projections.Job) jobJSON {
	var out jobJSON
	out.ID, out.Projection, out.DryRun, out.State, out.StartedAt, out.Error = j.ID, j.Projection, j.DryRun, string(j.State), j.StartedAt, j.Error
	if !j.EndedAt.IsZero() {
		out.EndedAt = &j.EndedAt
	}
	out.Progress.Applied, out.Progress.Position, out.Progress.Head = j.Progress.Applied, j.Progress.Position, j.Progress.Head
	if j.State == projections.JobSucceeded {
		rep := j.Report
		out.Report = &rebuildReportJSON{rep.Events, rep.Rows, rep.Swapped, rep.Compared, rep.LiveLag, rep.LiveGap, rep.Diff.Missing, rep.Diff.Extra, rep.Diff.Different}
	}
	out.Links.Self = "/api/v1/projections/rebuilds/" + j.ID
	return out
}
