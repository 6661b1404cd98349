package console

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/herald-notify/herald"
)

// Cookies of the console.
const (
	// SessionCookie holds the session token.
	SessionCookie = "herald_console"
	// loginCookie holds the token the sign-in form must carry back: a page of another site
	// cannot read it, so it cannot sign a browser in with a key of its choosing.
	loginCookie = "herald_console_login"
	// CSRFField is the form field of the session's CSRF token.
	CSRFField = "csrf"
)

type sessionKey struct{}

// sessionFrom returns the session a signed-in request carries.
func sessionFrom(ctx context.Context) Session {
	s, _ := ctx.Value(sessionKey{}).(Session)
	return s
}

// cookie returns a cookie the browser keeps to itself: no script reads it, no other site's
// request carries it, and it travels only over TLS when the console is reached over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true,
		Secure: overTLS(r), SameSite: http.SameSiteStrictMode}
}

// overTLS reports whether the browser reached the console over TLS: directly, or through a proxy
// that ended TLS and says so in X-Forwarded-Proto. The header is believed from anyone: a client
// that forges it only makes its own cookie Secure, which a plain-HTTP console then never gets back.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}

// loginPage serves the sign-in form, with a fresh login token in its cookie and its form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, code int, problem string) {
	token, err := randomToken()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.SetCookie(w, cookie(r, loginCookie, token, 600))
	c.render(w, r, code, "login", map[string]any{"LoginToken": token, "Problem": problem})
}

// login signs a browser in with an API key that carries the operate scope, ending the session the
// browser had before.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.showLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !equal(ck.Value, r.PostForm.Get("login_token")) {
		c.showLogin(w, r, http.StatusForbidden, "The sign-in form expired or did not come from this console: try again.")
		return
	}
	p, err := c.deps.Auth.Authenticate(r.Context(), strings.TrimSpace(r.PostForm.Get("api_key")))
	switch {
	case herald.ErrorCode(err) == herald.EUNAUTHORIZED:
		c.showLogin(w, r, http.StatusUnauthorized, "That API key is unknown or revoked.")
		return
	case err != nil:
		c.fail(w, r, err)
		return
	case !p.Can(herald.ScopeOperate):
		c.showLogin(w, r, http.StatusForbidden,
			"The API key \""+p.Name+"\" lacks the operate scope the console needs: sign in with a key that has it.")
		return
	}
	// The browser's previous session, if any, ends here: signing in again must not leave a live
	// session behind in the table, whoever's it was.
	if old, err := r.Cookie(SessionCookie); err == nil && old.Value != "" {
		if err := c.deps.Sessions.Close(r.Context(), old.Value); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	token, _, err := c.deps.Sessions.Open(r.Context(), p)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.SetCookie(w, cookie(r, SessionCookie, token, 0))
	c.logger.InfoContext(r.Context(), "console sign-in", "api_key", p.Name)
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

// logout ends the session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(SessionCookie); err == nil {
		if err := c.deps.Sessions.Close(r.Context(), ck.Value); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, cookie(r, SessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// signedIn lets a request through with its session, and sends one without to the sign-in page.
func (c *Console) signedIn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var token string
		if ck, err := r.Cookie(SessionCookie); err == nil {
			token = ck.Value
		}
		sess, err := c.deps.Sessions.Find(r.Context(), token)
		if herald.ErrorCode(err) == herald.EUNAUTHORIZED {
			if token != "" {
				http.SetCookie(w, cookie(r, SessionCookie, "", -1))
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, err)
			return
		}
		if err != nil {
			c.fail(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, sess)
		next.ServeHTTP(w, r.WithContext(herald.WithPrincipal(ctx, sess.Principal)))
	})
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// checkCSRF refuses a state-changing request whose form does not carry the session's CSRF token:
// a page of another site can make the browser post, but cannot read the token.
func (c *Console) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, herald.Errorf(herald.EINVALID, "the form could not be read"))
			return
		}
		if !equal(sessionFrom(r.Context()).CSRF, r.PostForm.Get(CSRFField)) {
			c.fail(w, r, herald.Errorf(herald.EFORBIDDEN, "the form's CSRF token is missing or wrong: reload the page and try again"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// equal compares two secrets in constant time; an empty one never matches.
func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
