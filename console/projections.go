package console

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald/wire"
)

// projections serves where each read model stands against the log, and the rebuilds this process
// ran lately, with a form to rebuild each.
func (c *Console) projections(w http.ResponseWriter, r *http.Request) {
	statuses, err := c.deps.Rebuilds.Statuses(r.Context())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "projections", wire.NewProjections(statuses, c.deps.Rebuilds.Recent()))
}

// startRebuild starts a rebuild, a dry run unless the form says swap, and shows its job.
func (c *Console) startRebuild(w http.ResponseWriter, r *http.Request) {
	job, err := c.deps.Rebuilds.Start(chi.URLParam(r, "name"), r.PostForm.Get("mode") != "swap")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, Prefix+"/projections/rebuilds/"+job.ID, http.StatusSeeOther)
}

// rebuildJob serves one rebuild: its progress while it runs (the page refreshes itself), then its
// report, with the difference a dry run found and a form to rebuild and swap.
func (c *Console) rebuildJob(w http.ResponseWriter, r *http.Request) {
	job, err := c.deps.Rebuilds.Job(chi.URLParam(r, "job"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "rebuild", wire.NewRebuildJob(job))
}
