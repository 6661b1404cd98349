package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/wire"
)

// keys serves the API keys, revoked ones too. Any signed-in operator sees them; only a key with
// the admin scope makes or revokes them, since a key that can make keys outlives its own revocation.
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
	p := sessionFrom(r.Context()).Principal
	data := map[string]any{"Keys": keys, "Created": created, "Scopes": p.Scopes, "Admin": p.Can(herald.ScopeAdmin)}
	if problem != nil {
		data["Problem"] = herald.ErrorMessage(problem)
		data["Fields"] = herald.ErrorFields(problem)
	}
	c.render(w, r, code, "keys", data)
}

// errNotAdmin refuses a change to the keys by a session whose key lacks the admin scope.
var errNotAdmin = herald.Errorf(herald.EFORBIDDEN, "making and revoking API keys needs a key with the admin scope: sign in with one")

// createKey makes a key and shows its token, this once. The new key may carry only scopes the
// signed-in key holds: no one grants more than they have.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request) {
	p := sessionFrom(r.Context()).Principal
	if !p.Can(herald.ScopeAdmin) {
		c.fail(w, r, errNotAdmin)
		return
	}
	var scopes []herald.Scope
	for _, s := range r.PostForm["scope"] {
		sc := herald.Scope(s)
		if slices.Contains(herald.Scopes, sc) && !p.Can(sc) {
			c.fail(w, r, herald.Errorf(herald.EFORBIDDEN, "your key %q lacks the %s scope: it cannot give it to another", p.Name, sc))
			return
		}
		scopes = append(scopes, sc)
	}
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
	if !sessionFrom(r.Context()).Principal.Can(herald.ScopeAdmin) {
		c.fail(w, r, errNotAdmin)
		return
	}
	k, err := c.deps.Keys.Revoke(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.logger.InfoContext(r.Context(), "console revoked an API key", "api_key", k.Name, "by", sessionFrom(r.Context()).Principal.Name)
	http.Redirect(w, r, Prefix+"/keys", http.StatusSeeOther)
}
