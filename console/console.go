// Package console is Herald's edge for people: the operator web console served at /console. It
// owns its pages (html/template, embedded with their stylesheet), its sessions (a signed-in
// browser, kept in PostgreSQL) and their CSRF tokens. Like package http, the edge for programs,
// it speaks in the read models', the operator's and the API keys' terms, and shows the same
// shapes as the API (package wire).
package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/apikeys"
	"github.com/herald-notify/herald/breakers"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/projections"
)

//go:embed templates/*.html assets/*
var files embed.FS

// assets are the files the pages load: the stylesheet and the script.
var assets = func() fs.FS {
	sub, err := fs.Sub(files, "assets")
	if err != nil {
		panic(err)
	}
	return sub
}()

// Prefix is where the console is served.
const Prefix = "/console"

// Authenticator tells who an API key stands for (see apikeys.Store).
type Authenticator interface {
	// Authenticate returns EUNAUTHORIZED for an unknown or revoked token.
	Authenticate(ctx context.Context, token string) (herald.Principal, error)
}

// Reader answers questions about notifications (see projections.Reader).
type Reader interface {
	List(ctx context.Context, f herald.ListFilter) ([]herald.Notification, string, error)
	Status(ctx context.Context, id string) (herald.Notification, error)
	StatusAsOf(ctx context.Context, id string, at time.Time) (herald.Notification, error)
	Events(ctx context.Context, id string) ([]events.Recorded, error)
	Counts(ctx context.Context) ([]projections.Count, error)
	Throughput(ctx context.Context, minutes int) ([]projections.Minute, error)
}

// Operator works the poison queue (see handlers.Operator).
type Operator interface {
	ParkedPage(ctx context.Context, q handlers.ParkedQuery) (handlers.ParkedPage, error)
	Preview(ctx context.Context, a handlers.Action, sel handlers.Selection, actor, reason string) ([]handlers.Planned, error)
	Requeue(ctx context.Context, sel handlers.Selection, actor, reason string) ([]handlers.Result, error)
	Discard(ctx context.Context, sel handlers.Selection, actor, reason string) ([]handlers.Result, error)
}

// Rebuilds runs and reports projection rebuilds (see projections.Jobs).
type Rebuilds interface {
	Statuses(ctx context.Context) ([]projections.ProjectionStatus, error)
	Start(name string, dryRun bool) (projections.Job, error)
	Job(id string) (projections.Job, error)
	Recent() []projections.Job
}

// Keys are the API keys (see apikeys.Store).
type Keys interface {
	Create(ctx context.Context, name string, scopes []herald.Scope, createdBy string) (apikeys.Key, string, error)
	List(ctx context.Context, revoked bool) ([]apikeys.Key, error)
	Revoke(ctx context.Context, nameOrID string) (apikeys.Key, error)
}

// Breakers are the workers' circuit breakers (see breakers.Store).
type Breakers interface {
	List(ctx context.Context, staleAfter time.Duration) ([]breakers.Row, error)
}

// QueueDepths counts the messages waiting in RabbitMQ's queues, by queue name.
type QueueDepths func(ctx context.Context) (map[string]int, error)

// Deps are what the console shows and acts through. Breakers and Depths may be nil: the overview
// then leaves them out.
type Deps struct {
	Auth     Authenticator
	Sessions *Sessions
	Reader   Reader
	Operator Operator
	Rebuilds Rebuilds
	Keys     Keys
	Breakers Breakers
	Depths   QueueDepths
}

// Console serves the operator console.
type Console struct {
	deps   Deps
	pages  *pages
	logger *slog.Logger
}

// New returns the console over deps.
func New(deps Deps, logger *slog.Logger) *Console {
	return &Console{deps: deps, pages: loadPages(), logger: logger}
}

// Handler returns the console's routes, to be mounted at Prefix.
func (c *Console) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	// Only the assets directory is served: a path that climbs out of it ("/assets/../templates")
	// cleans to a name the directory does not have.
	r.Handle("/assets/*", http.StripPrefix(Prefix+"/assets", http.FileServerFS(assets)))
	r.Get("/login", c.loginPage)
	r.Post("/login", c.login)
	// One chain: every page past the login needs a session, and every form posted past it the
	// session's CSRF token as well.
	signedIn := r.With(c.signedIn)
	signedIn.Get("/", c.overview)
	signedIn.Get("/notifications", c.notifications)
	signedIn.Get("/notifications/{id}", c.notification)
	signedIn.Get("/poison", c.poison)
	signedIn.Get("/projections", c.projections)
	signedIn.Get("/projections/rebuilds/{job}", c.rebuildJob)
	signedIn.Get("/keys", c.keys)
	form := signedIn.With(c.checkCSRF)
	form.Post("/logout", c.logout)
	form.Post("/poison/preview", c.poisonPreview)
	form.Post("/poison/act", c.poisonAct)
	form.Post("/projections/{name}/rebuild", c.startRebuild)
	form.Post("/keys", c.createKey)
	form.Post("/keys/{id}/revoke", c.revokeKey)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, herald.Errorf(herald.ENOTFOUND, "no such page: %s", r.URL.Path))
	})
	return r
}

// contentSecurityPolicy lets a page load only the console's own stylesheet and script, and no
// inline script at all; the charts are SVG markup, styled by attributes.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets what every console answer carries: no framing, no sniffing, no caching of
// pages that show notifications' contents, no referrer leaking their ids.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
