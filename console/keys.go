package console

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/wire"
)

// keys serves the API keys, revoked ones too.
func (c *Console) keys(w http.ResponseWriter, r *http.Request) {
	c.showKeys(w, r, http.StatusOK, nil, nil)
}

func (c *Console) showKeys(w http.ResponseWriter, r *http.Request, code int, created *wire.APIKey, problem error) {
	list, err := c.deps.Keys.List(r.Context(), true)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	keys := make([]wire.APIKey, len(list))
	for i, k := range list {
		keys[i] = wire.NewAPIKey(k, "")
	}
	data := map[string]any{"Keys": keys, "Created": created, "Scopes": herald.Scopes}
	if problem != nil {
		data["Problem"] = herald.ErrorMessage(problem)
		data["Fields"] = herald.ErrorFields(problem)
	}
	c.render(w, r, code, "keys", data)
}

// createKey makes a key and shows its token, this once.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request) {
	var scopes []herald.Scope
	for _, s := range r.PostForm["scope"] {
		scopes = append(scopes, herald.Scope(s))
	}
	p := sessionFrom(r.Context()).Principal
	k, token, err := c.deps.Keys.Create(r.Context(), strings.TrimSpace(r.PostForm.Get("name")), scopes, p.Actor()+" (console)")
	if code := herald.ErrorCode(err); code == herald.EINVALID || code == herald.ECONFLICT {
		c.showKeys(w, r, statusOf[code], nil, err)
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.logger.InfoContext(r.Context(), "console created an API key", "api_key", k.Name, "by", p.Name)
	created := wire.NewAPIKey(k, token)
	c.showKeys(w, r, http.StatusCreated, &created, nil)
}

// revokeKey revokes a key by its id.
func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := c.deps.Keys.Revoke(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.logger.InfoContext(r.Context(), "console revoked an API key", "api_key", k.Name, "by", sessionFrom(r.Context()).Principal.Name)
	http.Redirect(w, r, Prefix+"/keys", http.StatusSeeOther)
}
