package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/wire"
)

// poison serves a page of the poison queue, in queue order, with each notification's state.
func (c *Console) poison(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := handlers.ParkedQuery{Cursor: q.Get("cursor")}
	if v := q.Get("type"); v != "" {
		ch, err := herald.ParseChannel(v)
		if err != nil {
			c.fail(w, r, herald.Invalid(herald.ErrorMessage(err), map[string]string{"type": herald.ErrorMessage(err)}))
			return
		}
		query.Channel = ch
	}
	page, err := c.deps.Operator.ParkedPage(r.Context(), query)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data := map[string]any{"Page": wire.NewParkedPage(page), "Type": string(query.Channel)}
	if page.Next != "" {
		nq := r.URL.Query()
		nq.Set("cursor", page.Next)
		data["Next"] = Prefix + "/poison?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "poison", data)
}

// poisonForm is an operator's choice on the poison page: what to do, to which notifications, why.
type poisonForm struct {
	Action handlers.Action
	IDs    []string
	Reason string
}

// readPoisonForm reads the form; the reason is required for both actions here, so that every
// action taken from the console says why.
func readPoisonForm(r *http.Request) (poisonForm, error) {
	f := poisonForm{Action: handlers.Action(r.PostForm.Get("action")), IDs: r.PostForm["id"],
		Reason: strings.TrimSpace(r.PostForm.Get("reason"))}
	fields := map[string]string{}
	if f.Action != handlers.ActionRequeued && f.Action != handlers.ActionDiscarded {
		fields["action"] = "choose requeue or discard"
	}
	if len(f.IDs) == 0 {
		fields["id"] = "select at least one notification"
	}
	if f.Reason == "" {
		fields["reason"] = "is required: say why"
	}
	if len(fields) > 0 {
		return f, herald.Invalid("the action is incomplete", fields)
	}
	return f, nil
}

// poisonPreview shows exactly what the chosen action would do to each selected notification,
// doing nothing, with a form that confirms it.
func (c *Console) poisonPreview(w http.ResponseWriter, r *http.Request) {
	f, err := readPoisonForm(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p := sessionFrom(r.Context()).Principal
	plan, err := c.deps.Operator.Preview(r.Context(), f.Action, handlers.Selection{IDs: f.IDs}, p.Actor(), f.Reason)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "poison_preview", map[string]any{"Form": f, "Plan": wire.NewPlan(plan), "Confirm": confirmFields(plan), "Actor": p.Actor()})
}

// confirmField is what the confirmation form carries back of one planned notification, so that
// the action does what the preview showed or nothing.
type confirmField struct {
	ID         string
	Version    int64
	Action     handlers.Action
	MessageIDs []string
}

func confirmFields(plan []handlers.Planned) []confirmField {
	out := make([]confirmField, len(plan))
	for i, p := range plan {
		out[i] = confirmField{ID: p.ID, Version: p.Notification.Version, Action: p.Action, MessageIDs: p.MessageIDs}
	}
	return out
}

// readExpected reads what the confirmation form says the preview showed for each id: its version
// ("version.<id>"), planned action ("planned.<id>") and parked messages ("message.<id>").
func readExpected(r *http.Request, ids []string) (map[string]handlers.Expected, error) {
	out := make(map[string]handlers.Expected, len(ids))
	for _, id := range ids {
		v, err := strconv.ParseInt(r.PostForm.Get("version."+id), 10, 64)
		action := handlers.Action(r.PostForm.Get("planned." + id))
		if err != nil || action == "" {
			return nil, herald.Invalid("the confirmation does not say what the preview showed: preview again",
				map[string]string{id: "has no previewed version or action"})
		}
		out[id] = handlers.Expected{Version: v, Action: action, MessageIDs: r.PostForm["message."+id]}
	}
	return out, nil
}

// poisonAct runs the action the preview showed, recorded as done by the signed-in API key. The
// form carries the preview's plan: if the queue or a notification moved since, the whole batch is
// refused rather than done differently from what the operator saw.
func (c *Console) poisonAct(w http.ResponseWriter, r *http.Request) {
	f, err := readPoisonForm(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	expect, err := readExpected(r, f.IDs)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	act := c.deps.Operator.Requeue
	if f.Action == handlers.ActionDiscarded {
		act = c.deps.Operator.Discard
	}
	p := sessionFrom(r.Context()).Principal
	results, err := act(r.Context(), handlers.Selection{IDs: f.IDs, Expect: expect}, p.Actor(), f.Reason)
	if err != nil && len(results) == 0 {
		c.fail(w, r, err)
		return
	}
	data := map[string]any{"Results": wire.NewResults(results).Results, "Actor": p.Actor()}
	if err != nil {
		data["Problem"] = herald.ErrorMessage(err)
	}
	c.render(w, r, http.StatusOK, "poison_done", data)
}
