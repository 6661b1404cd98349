package wire

import (
	"time"

	"github.com/herald-notify/herald/projections"
)

// ProjectionStatus is where a read model stands against the log.
type ProjectionStatus struct {
	Name     string `json:"name"`
	Position int64  `json:"position"`
	Head     int64  `json:"head"`
	// Lag counts the events the projection has yet to apply.
	Lag int64 `json:"lag"`
	// Stopped says where the projection stopped at a gap in a stream's versions, and since when.
	Stopped   string     `json:"stopped,omitempty"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
}

// NewProjectionStatus returns s as users see it.
func NewProjectionStatus(s projections.ProjectionStatus) ProjectionStatus {
	out := ProjectionStatus{Name: s.Name, Position: s.Position, Head: s.Head, Lag: s.Lag, Stopped: s.Stopped}
	if s.Stopped != "" {
		out.StoppedAt = utc(s.StoppedAt)
	}
	return out
}

// NewProjectionStatuses returns statuses as users see them, never nil.
func NewProjectionStatuses(statuses []projections.ProjectionStatus) []ProjectionStatus {
	return all(statuses, NewProjectionStatus)
}

// RebuildReport is what a finished rebuild did. Missing, Extra and Different count the rows that
// differ between the rebuilt and the live table, and the *Keys name a few of them, when Compared.
type RebuildReport struct {
	Projection      string   `json:"projection"`
	Events          int64    `json:"events"`
	Rows            int64    `json:"rows"`
	Position        int64    `json:"position"`
	DurationSeconds float64  `json:"duration_seconds"`
	EventsPerSecond float64  `json:"events_per_second"`
	Swapped         bool     `json:"swapped"`
	Compared        bool     `json:"compared"`
	LiveLag         int64    `json:"live_lag"`
	LiveGap         string   `json:"live_gap,omitempty"`
	Missing         int64    `json:"missing"`
	Extra           int64    `json:"extra"`
	Different       int64    `json:"different"`
	MissingKeys     []string `json:"missing_keys,omitempty"`
	ExtraKeys       []string `json:"extra_keys,omitempty"`
	DifferentKeys   []string `json:"different_keys,omitempty"`
}

// NewRebuildReport returns r as users see it.
func NewRebuildReport(r projections.Report) RebuildReport {
	return RebuildReport{
		Projection: r.Projection, Events: r.Events, Rows: r.Rows, Position: r.Position,
		DurationSeconds: r.Duration.Seconds(), EventsPerSecond: RebuildRate(r),
		Swapped: r.Swapped, Compared: r.Compared, LiveLag: r.LiveLag, LiveGap: r.LiveGap,
		Missing: r.Diff.Missing, Extra: r.Diff.Extra, Different: r.Diff.Different,
		MissingKeys: r.Diff.MissingKeys, ExtraKeys: r.Diff.ExtraKeys, DifferentKeys: r.Diff.DifferentKeys,
	}
}

// RebuildRate is the events a rebuild applied per second.
func RebuildRate(r projections.Report) float64 {
	return float64(r.Events) / max(r.Duration.Seconds(), 0.001)
}

// RebuildJob is a rebuild the API started, running or ended.
type RebuildJob struct {
	ID         string      `json:"id"`
	Projection string      `json:"projection"`
	DryRun     bool        `json:"dry_run"`
	State      string      `json:"state"`
	StartedAt  time.Time   `json:"started_at"`
	EndedAt    *time.Time  `json:"ended_at,omitempty"`
	Progress   JobProgress `json:"progress"`
	// Report is set when the job succeeded; Error when it failed.
	Report *RebuildReport `json:"report,omitempty"`
	Error  string         `json:"error,omitempty"`
	Links  JobLinks       `json:"links"`
}

// JobProgress is how far a rebuild has come: events applied, the last one's position, and the
// log's head when it started.
type JobProgress struct {
	Applied  int64 `json:"applied"`
	Position int64 `json:"position"`
	Head     int64 `json:"head"`
}

// JobLinks are the API paths of a rebuild job.
type JobLinks struct {
	Self string `json:"self"`
}

// NewRebuildJob returns j as users see it.
func NewRebuildJob(j projections.Job) RebuildJob {
	out := RebuildJob{
		ID: j.ID, Projection: j.Projection, DryRun: j.DryRun, State: string(j.State),
		StartedAt: j.StartedAt.UTC(), EndedAt: utc(j.EndedAt), Error: j.Error,
		Progress: JobProgress{Applied: j.Progress.Applied, Position: j.Progress.Position, Head: j.Progress.Head},
		Links:    JobLinks{Self: "/api/v1/projections/rebuilds/" + j.ID},
	}
	if j.State == projections.JobSucceeded {
		rep := NewRebuildReport(j.Report)
		out.Report = &rep
	}
	return out
}

// Projections is where every read model stands, and the rebuilds the API ran lately.
type Projections struct {
	Projections []ProjectionStatus `json:"projections"`
	Rebuilds    []RebuildJob       `json:"rebuilds"`
}

// NewProjections returns statuses and jobs as users see them.
func NewProjections(statuses []projections.ProjectionStatus, jobs []projections.Job) Projections {
	return Projections{Projections: NewProjectionStatuses(statuses), Rebuilds: all(jobs, NewRebuildJob)}
}
