package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Jobs runs rebuilds in the background for the API, and remembers the last ones. A job runs
// detached from the request that started it, until it ends or the process stops (which rolls
// the rebuild back: the live table stays as it was).
type Jobs struct {
	base      context.Context
	rebuilder *Rebuilder
	log       *events.Log

	mu   sync.Mutex
	jobs []*Job // newest last, at most keepJobs
}

const keepJobs = 20

// JobState is where a rebuild job is.
type JobState string

const (
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
)

// Job is one rebuild started through the API. Read it through Jobs, which copies it.
type Job struct {
	ID         string
	Projection string
	DryRun     bool
	State      JobState
	StartedAt  time.Time
	EndedAt    time.Time
	Progress   Progress
	Report     Report
	Error      string
}

// NewJobs returns a job runner whose jobs stop when base is done.
func NewJobs(base context.Context, r *Rebuilder, log *events.Log) *Jobs {
	return &Jobs{base: base, rebuilder: r, log: log}
}

// Start starts a rebuild of the projection called name. ENOTFOUND for an unknown projection,
// ECONFLICT when this process is rebuilding it already (another process's rebuild is found out
// by the job, which then fails).
func (j *Jobs) Start(name string, dryRun bool) (Job, error) {
	p, err := Named(name)
	if err != nil {
		return Job{}, herald.Errorf(herald.ENOTFOUND, "%v", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, job := range j.jobs {
		if job.Projection == name && job.State == JobRunning {
			return Job{}, herald.Errorf(herald.ECONFLICT, "%s is being rebuilt already: job %s", name, job.ID)
		}
	}
	job := &Job{ID: uuid.NewString(), Projection: name, DryRun: dryRun, State: JobRunning, StartedAt: time.Now().UTC().Truncate(time.Microsecond)}
	j.jobs = append(j.jobs, job)
	if len(j.jobs) > keepJobs {
		j.jobs = j.jobs[len(j.jobs)-keepJobs:]
	}
	go j.run(job, p)
	return *job, nil
}

func (j *Jobs) run(job *Job, p Rebuildable) {
	report, err := j.rebuilder.Rebuild(j.base, p, RebuildOptions{
		DryRun: job.DryRun,
		Progress: func(pr Progress) {
			j.mu.Lock()
			job.Progress = pr
			j.mu.Unlock()
		},
	})
	j.mu.Lock()
	defer j.mu.Unlock()
	job.EndedAt = time.Now().UTC().Truncate(time.Microsecond)
	job.Report = report
	if err != nil {
		job.State, job.Error = JobFailed, err.Error()
		if errors.Is(err, ErrRebuildRunning) {
			job.Error = fmt.Sprintf("%s: another process is rebuilding it", p.Name())
		}
		j.rebuilder.logger.Error("rebuild failed", "projection", p.Name(), "job", job.ID, "error", err)
		return
	}
	job.State = JobSucceeded
	j.rebuilder.logger.Info("rebuild done", "projection", p.Name(), "job", job.ID, "events", report.Events,
		"swapped", report.Swapped, "duration", report.Duration)
}

// Job returns the job with id. ENOTFOUND if this process does not remember one.
func (j *Jobs) Job(id string) (Job, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, job := range j.jobs {
		if job.ID == id {
			return *job, nil
		}
	}
	return Job{}, herald.Errorf(herald.ENOTFOUND, "no rebuild job %s in this process", id)
}

// Recent returns the jobs this process remembers, newest first.
func (j *Jobs) Recent() []Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Job, 0, len(j.jobs))
	for i := len(j.jobs) - 1; i >= 0; i-- {
		out = append(out, *j.jobs[i])
	}
	return out
}

// Statuses reports where every projection stands.
func (j *Jobs) Statuses(ctx context.Context) ([]ProjectionStatus, error) { return Statuses(ctx, j.log) }
