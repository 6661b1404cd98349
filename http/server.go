// Package http is Herald's edge: the JSON API clients send notifications through and read their
// status, history and events from, the SMS gateway's signed callbacks, plus the health, readiness
// and metrics endpoints. It speaks in handlers' and projections' terms and knows nothing of
// brokers.
package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/redact"
	"github.com/herald-notify/herald/tracing"
	"github.com/herald-notify/herald/wire"
)

// Acceptor accepts notifications (see handlers.Acceptor).
type Acceptor interface {
	// Accept returns the pending notification, EINVALID with fields, or another error.
	Accept(ctx context.Context, req handlers.SendRequest) (handlers.Accepted, error)
}

// Reader answers questions about notifications (see projections.Reader).
type Reader interface {
	// Status, History and Events return ENOTFOUND for an unknown id.
	Status(ctx context.Context, id string) (herald.Notification, error)
	History(ctx context.Context, id string) ([]herald.HistoryEntry, error)
	Events(ctx context.Context, id string) ([]events.Recorded, error)
	// StatusAsOf returns the notification as it was at the instant at, from the log alone;
	// ENOTFOUND if it did not exist yet then.
	StatusAsOf(ctx context.Context, id string, at time.Time) (herald.Notification, error)
	// List returns EINVALID for a bad limit or cursor.
	List(ctx context.Context, f herald.ListFilter) ([]herald.Notification, string, error)
}

// Check is a dependency /readyz asks about.
type Check struct {
	Name  string
	Ready func(ctx context.Context) error
}

// Config is what the server needs besides its dependencies.
type Config struct {
	// MaxBodyBytes bounds a request body; larger bodies get 413.
	MaxBodyBytes int64
	// SendBodyBytes bounds the body of a send, which may carry attachments in base64: set it to
	// MaxBodyBytes plus the acceptor's Limits.SendBodyBytes, so that a send with attachments up
	// to their limits gets through. 0 means MaxBodyBytes. The other routes keep MaxBodyBytes.
	SendBodyBytes int64
	// Metrics, if set, receives the HTTP metrics and is served at /metrics.
	Metrics *prometheus.Registry
	// Profiling serves Go's profiler at /debug/pprof/: for measuring, not for the open internet.
	Profiling bool
	// Secrets are masked in what /readyz tells of a dependency's error, which may quote its
	// connection string; nil masks the passwords of URLs only.
	Secrets *redact.Secrets
	// TrustedProxies are the CIDR prefixes of the reverse proxies in front of Herald. A request's
	// client address is its TCP peer, unless that peer is one of them: then it is the rightmost
	// address in X-Forwarded-For that is not. Without any, X-Forwarded-For is ignored, so a
	// client cannot choose its own address. Invalid prefixes make Handler panic: check them
	// with ParseTrustedProxies.
	TrustedProxies []string
	// PoisonTimeout is how long a request to the poison queue may take, waiting for another
	// look at it included, before it is answered 503; 0 means DefaultPoisonTimeout.
	PoisonTimeout time.Duration
	// ProofConcurrency is how many proofs (GET …/proof) this process computes at once; a
	// request beyond them is answered 429 with Retry-After. 0 means DefaultProofConcurrency.
	ProofConcurrency int
	// ProofTimeout is how long one proof may take before it is abandoned and answered 503; 0
	// means DefaultProofTimeout.
	ProofTimeout time.Duration
	// Tracing opens a span for each send; off by default.
	Tracing tracing.Tracing
}

// ParseTrustedProxies checks prefixes for Config.TrustedProxies.
func ParseTrustedProxies(prefixes []string) error {
	for _, p := range prefixes {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("trusted proxy %q: want a CIDR prefix such as 10.0.0.0/8 or 127.0.0.1/32: %w", p, err)
		}
	}
	return nil
}

// Server routes the API.
type Server struct {
	acceptor Acceptor
	reader   Reader
	checks   []Check
	operator Operator
	rebuilds Rebuilds
	webhooks WebhookEndpoints
	replays  WebhookReplays
	receipts *SMSReceipts
	// suppressions is the suppression list, when the operators' API serves it.
	suppressions Suppressions
	// templates are the stored templates, when the operators' API serves them.
	templates Templates
	// canceller calls off notifications, when the API serves the cancel endpoints.
	canceller Canceller
	auth      *auth
	cfg       Config
	logger    *slog.Logger
	metrics   *httpMetrics
	// receiptMetrics counts the SMS gateway's callbacks, when receipts and metrics are on.
	receiptMetrics *receiptMetrics
	// proofs proves notifications' events against the log's checkpoints, when served;
	// proofSlots holds a token for each proof being computed.
	proofs     Proofs
	proofSlots chan struct{}
	// console is the operator console, served under consolePrefix, when the process serves it.
	console       http.Handler
	consolePrefix string
}

// NewServer returns a server over its dependencies. Without an acceptor and a reader it serves
// no notification endpoints: a worker or projector process serves only /healthz, /readyz and
// /metrics.
func NewServer(cfg Config, acceptor Acceptor, reader Reader, checks []Check, logger *slog.Logger) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.SendBodyBytes <= 0 {
		cfg.SendBodyBytes = cfg.MaxBodyBytes
	}
	s := &Server{acceptor: acceptor, reader: reader, checks: checks, cfg: cfg, logger: logger}
	if cfg.Metrics != nil {
		s.metrics = newHTTPMetrics(cfg.Metrics)
		cfg.Metrics.MustRegister(readiness(checks))
	}
	return s
}

// DefaultMaxBodyBytes is the default bound of a request body.
const DefaultMaxBodyBytes = 256 << 10

// WithOperator adds the operators' endpoints (the poison queue) to s, served by op.
func (s *Server) WithOperator(op Operator) *Server {
	s.operator = op
	return s
}

// WithConsole serves h, the operator console (package console), under prefix: beside the API,
// with its correlation ids, request logs, metrics and panic recovery.
func (s *Server) WithConsole(prefix string, h http.Handler) *Server {
	s.console, s.consolePrefix = h, prefix
	return s
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	clientIP := chimw.ClientIPFromRemoteAddr
	if len(s.cfg.TrustedProxies) > 0 {
		clientIP = chimw.ClientIPFromXFF(s.cfg.TrustedProxies...)
	}
	r.Use(clientIP, s.correlate, s.observe, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &herald.Error{Code: codeRouteNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allowed := allowedMethods(r, req.URL.Path)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(w, req, &herald.Error{Code: codeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed on %s: use %s", req.Method, req.URL.Path, strings.Join(allowed, " or "))})
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get(OpenAPIPath, s.openAPI)
	if s.cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}))
	}
	if s.cfg.Profiling {
		r.Mount("/debug", chimw.Profiler())
	}
	if s.acceptor != nil && s.reader != nil {
		r.Route("/api/v1/notifications", func(r chi.Router) {
			r.Use(s.authenticate)
			r.With(s.traceSend, s.require(herald.ScopeSend)).Post("/send", s.send)
			if s.canceller != nil {
				s.cancelRoutes(r)
			}
			r.Group(func(r chi.Router) {
				r.Use(s.require(herald.ScopeRead))
				r.Get("/", s.list)
				r.Get("/{id}/status", s.status)
				r.Get("/{id}/history", s.history)
				r.Get("/{id}/events", s.events)
				if s.proofs != nil {
					r.Get("/{id}/proof", s.proof)
				}
			})
		})
	}
	if s.operator != nil {
		r.Route("/api/v1/poison", func(r chi.Router) {
			r.Use(s.authenticate, s.require(herald.ScopeOperate))
			s.poisonRoutes(r)
		})
	}
	if s.rebuilds != nil {
		r.Route("/api/v1/projections", func(r chi.Router) {
			r.Use(s.authenticate, s.require(herald.ScopeOperate))
			s.projectionRoutes(r)
		})
	}
	if s.receipts != nil {
		// Outside the API keys: the gateway signs its requests instead.
		r.Post(receipts.StatusPath, s.smsStatus)
		r.Post(receipts.InboundPath, s.smsInbound)
	}
	if s.webhooks != nil && s.replays != nil {
		r.Route("/api/v1/webhooks", func(r chi.Router) {
			r.Use(s.authenticate, s.require(herald.ScopeOperate))
			s.webhookRoutes(r)
		})
	}
	if s.suppressions != nil {
		r.Route(suppressionsPrefix, func(r chi.Router) {
			r.Use(s.authenticate, s.require(herald.ScopeOperate))
			s.suppressionRoutes(r)
		})
	}
	if s.templates != nil {
		r.Route(wire.TemplatesPrefix, func(r chi.Router) {
			r.Use(s.authenticate, s.require(herald.ScopeOperate))
			s.templateRoutes(r)
		})
	}
	if s.console != nil {
		r.Mount(s.consolePrefix, s.console)
	}
	return r
}

// allowedMethods lists the methods r routes for path.
func allowedMethods(r *chi.Mux, path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if r.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}

// recoverer turns a panic into a logged internal error and a JSON 500, like any other failure.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil || p == http.ErrAbortHandler {
				if p != nil {
					panic(p)
				}
				return
			}
			s.writeError(w, r, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
		}()
		next.ServeHTTP(w, r)
	})
}

// CorrelationHeader carries the id that ties a request to everything it causes. A client may
// send its own; otherwise Herald makes one. Either way the response carries it.
const CorrelationHeader = "X-Correlation-ID"

func (s *Server) correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(CorrelationHeader)
		if !validCorrelationID(id) {
			id = uuid.NewString()
		}
		w.Header().Set(CorrelationHeader, id)
		next.ServeHTTP(w, r.WithContext(herald.WithCorrelationID(r.Context(), id)))
	})
}

// validCorrelationID accepts short printable ASCII ids, so a client's id can go into logs and
// message headers as it is.
func validCorrelationID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// observe logs each request once and records its metrics.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		if s.metrics != nil {
			s.metrics.observe(r.Method, route, ww.Status(), elapsed)
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		s.logger.Log(r.Context(), level, "http request",
			"method", r.Method, "route", route, "path", r.URL.Path, "status", ww.Status(),
			"bytes", ww.BytesWritten(), "duration_ms", float64(elapsed.Microseconds())/1000, "client_ip", chimw.GetClientIP(r.Context()),
			"correlation_id", herald.CorrelationID(r.Context()))
	})
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the API's request counter and latency histogram, by route and
// status, on reg.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request duration by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(method, route string, code int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}
