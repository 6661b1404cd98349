package webhooks

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
)

// ReplayJobs runs replays in the background for the API, and remembers the last ones. A job runs
// detached from the request that started it, until it ends or the process stops (which stops it
// after the page under way: what it sent is recorded, and a new replay from its position goes on).
type ReplayJobs struct {
	base   context.Context
	sender *Sender
	lanes  int

	mu   sync.Mutex
	jobs []*ReplayJob // newest last, at most keepReplayJobs
	// running counts the jobs under way, for Wait.
	running sync.WaitGroup
}

const keepReplayJobs = 50

// Replay job states.
const (
	ReplayRunning   = "running"
	ReplaySucceeded = "succeeded"
	ReplayFailed    = "failed"
)

// ReplayJob is one replay started through the API. Read it through ReplayJobs, which copies it.
type ReplayJob struct {
	ID         string
	EndpointID string
	Request    ReplayRequest
	State      string
	StartedAt  time.Time
	EndedAt    time.Time
	Progress   ReplayProgress
	Report     ReplayReport
	Error      string
}

// NewReplayJobs returns a job runner whose jobs stop when base is done; each sends with lanes
// requests at a time.
func NewReplayJobs(base context.Context, sender *Sender, lanes int) *ReplayJobs {
	return &ReplayJobs{base: base, sender: sender, lanes: lanes}
}

// Start starts a replay to endpoint id. EINVALID for a bad request, ENOTFOUND for an unknown
// endpoint, ECONFLICT while this process replays to the endpoint already.
func (j *ReplayJobs) Start(ctx context.Context, id string, r ReplayRequest) (ReplayJob, error) {
	if err := r.Validate(); err != nil {
		return ReplayJob{}, err
	}
	if _, err := j.sender.endpoints.Get(ctx, id); err != nil {
		return ReplayJob{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, job := range j.jobs {
		if job.EndpointID == id && job.State == ReplayRunning {
			return ReplayJob{}, herald.Errorf(herald.ECONFLICT, "a replay to endpoint %s is running already: job %s", id, job.ID)
		}
	}
	job := &ReplayJob{ID: uuid.NewString(), EndpointID: id, Request: r, State: ReplayRunning, StartedAt: time.Now().UTC().Truncate(time.Microsecond)}
	j.jobs = append(j.jobs, job)
	if len(j.jobs) > keepReplayJobs {
		j.jobs = j.jobs[len(j.jobs)-keepReplayJobs:]
	}
	j.running.Add(1)
	go func() {
		defer j.running.Done()
		j.run(job)
	}()
	return *job, nil
}

// Wait returns once every job has ended. A job ends soon after base is done: the page under way
// is posted and recorded. The process waits for it before it closes its database pool, or what
// the page posted would go unrecorded.
func (j *ReplayJobs) Wait() { j.running.Wait() }

// run runs job to its end.
func (j *ReplayJobs) run(job *ReplayJob) {
	rep, err := j.sender.Replay(j.base, job.EndpointID, job.Request, j.lanes, func(p ReplayProgress) {
		j.mu.Lock()
		job.Progress = p
		j.mu.Unlock()
	})
	j.mu.Lock()
	defer j.mu.Unlock()
	job.Report, job.EndedAt = rep, time.Now().UTC().Truncate(time.Microsecond)
	job.State = ReplaySucceeded
	if err != nil {
		job.State, job.Error = ReplayFailed, herald.ErrorMessage(err)
	}
}

// Get returns the replay job with id to endpoint endpointID. ENOTFOUND when this process has no
// such job (it ran in another process, or long ago).
func (j *ReplayJobs) Get(endpointID, id string) (ReplayJob, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, job := range j.jobs {
		if job.ID == id && job.EndpointID == endpointID {
			return *job, nil
		}
	}
	return ReplayJob{}, herald.Errorf(herald.ENOTFOUND, "no replay job %s for endpoint %s in this process", id, endpointID)
}
