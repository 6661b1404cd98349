package bounces

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

const (
	// DefaultMaxMessageBytes caps a message: a DSN returns at most the original message, and
	// Herald's are small text mails. Beyond it the listener answers 552.
	DefaultMaxMessageBytes = 10 << 20
	// DefaultRetention is how long reports are kept.
	DefaultRetention = 30 * 24 * time.Hour
	// sweepEvery is how often reports past their retention are deleted.
	sweepEvery = time.Hour
	// readTimeout and writeTimeout bound each command and reply: a client that says nothing for a
	// minute is hung up on (RFC 5321 asks servers to wait 5 minutes for a command; reports come
	// from MTAs that answer at once, and a stalled one tries again later).
	readTimeout  = time.Minute
	writeTimeout = time.Minute
	// maxRecipients: a report goes to one return path; a few are allowed for forwarded loops.
	maxRecipients = 10
	// recordTimeout bounds recording one message.
	recordTimeout = 30 * time.Second
	// DefaultMaxConnections bounds the conversations under way: a client past it is told 451 at
	// HELO and tries again. Each holds at most MaxStoredBytes of its message in memory, however
	// large the message: 16 MiB for all of them.
	DefaultMaxConnections = 64
)

// ListenerConfig configures the bounce listener.
type ListenerConfig struct {
	// Domain is the bounce domain: RCPT TO any other domain is refused.
	Domain string
	// Hostname is what the listener calls itself in its greeting; empty: Domain.
	Hostname string
	// MaxMessageBytes caps a message; 0 means DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// Retention is how long reports are kept; 0 means DefaultRetention.
	Retention time.Duration
	// SweepEvery is how often old reports are deleted; 0 means hourly.
	SweepEvery time.Duration
	// MaxConnections bounds the conversations under way; 0 means DefaultMaxConnections.
	MaxConnections int
	Logger         *slog.Logger
}

// Listener is the inbound SMTP server of the bounce domain.
type Listener struct {
	cfg      ListenerConfig
	recorder *Recorder
	store    *Store
	logger   *slog.Logger
	serving  atomic.Bool
	sessions atomic.Int64
}

// NewListener returns a listener that hands what it receives to recorder and sweeps store.
func NewListener(recorder *Recorder, store *Store, cfg ListenerConfig) (*Listener, error) {
	cfg.Domain = strings.ToLower(strings.TrimSpace(cfg.Domain))
	if cfg.Domain == "" || strings.ContainsAny(cfg.Domain, " @<>") {
		return nil, fmt.Errorf("bounce listener: domain %q is not a domain name", cfg.Domain)
	}
	if cfg.MaxMessageBytes < 0 || cfg.Retention < 0 || cfg.SweepEvery < 0 || cfg.MaxConnections < 0 {
		return nil, errors.New("bounce listener: size, retention, sweep interval and connections must not be negative")
	}
	cfg.MaxConnections = cmp.Or(cfg.MaxConnections, DefaultMaxConnections)
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, DefaultMaxMessageBytes)
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.SweepEvery = cmp.Or(cfg.SweepEvery, sweepEvery)
	cfg.Hostname = cmp.Or(cfg.Hostname, cfg.Domain)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{cfg: cfg, recorder: recorder, store: store, logger: logger}, nil
}

// Run listens on addr and serves until ctx ends.
func (l *Listener) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bounce listener: %w", err)
	}
	return l.Serve(ctx, ln)
}

// Serve serves SMTP on ln, and sweeps the reports past their retention, until ctx ends; then it
// stops taking connections and waits for the conversations under way, as long as ctx's grace
// allows (it closes them when the caller's deadline for stopping comes: see the cmd wiring).
func (l *Listener) Serve(ctx context.Context, ln net.Listener) error {
	srv := smtp.NewServer(&backend{l: l})
	srv.Domain = l.cfg.Hostname
	srv.MaxMessageBytes = l.cfg.MaxMessageBytes
	srv.MaxRecipients = maxRecipients
	srv.ReadTimeout = readTimeout
	srv.WriteTimeout = writeTimeout
	srv.ErrorLog = slogPrinter{l.logger}

	l.logger.Info("bounce listener started", "addr", ln.Addr().String(), "domain", l.cfg.Domain)
	l.serving.Store(true)
	defer l.serving.Store(false)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	sweepCtx, stopSweeps := context.WithCancel(ctx)
	sweeps := make(chan struct{})
	go func() { defer close(sweeps); l.sweep(sweepCtx) }()
	defer func() { stopSweeps(); <-sweeps }()

	select {
	case err := <-served:
		return fmt.Errorf("bounce listener: %w", err)
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		_ = srv.Close()
	}
	<-served
	return nil
}

// Ready reports whether the listener is serving.
func (l *Listener) Ready(context.Context) error {
	if !l.serving.Load() {
		return errors.New("the bounce listener is not listening")
	}
	return nil
}

// sweep deletes the reports past their retention, at once and then every SweepEvery.
func (l *Listener) sweep(ctx context.Context) {
	t := time.NewTicker(l.cfg.SweepEvery)
	defer t.Stop()
	for {
		n, err := l.store.Sweep(ctx, l.cfg.Retention)
		switch {
		case err != nil && ctx.Err() == nil:
			l.logger.Error("sweep inbound reports", "error", err)
		case n > 0:
			l.logger.Info("swept inbound reports", "deleted", n, "retention", l.cfg.Retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backend makes a session per connection.
type backend struct{ l *Listener }

// NewSession starts a conversation, unless MaxConnections are under way.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if b.l.sessions.Add(1) > int64(b.l.cfg.MaxConnections) {
		b.l.sessions.Add(-1)
		return nil, errors.New("too many connections; try again later")
	}
	return &session{l: b.l, remote: c.Conn().RemoteAddr().String()}, nil
}

// session is one connection's mail transaction.
type session struct {
	l      *Listener
	remote string
	from   string
	to     []string
	ended  sync.Once
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

// Rcpt takes addresses of the bounce domain only: the listener is no relay.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	_, domain, ok := strings.Cut(trimAngles(to), "@")
	if !ok || !strings.EqualFold(domain, s.l.cfg.Domain) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "relay access denied: only addresses @" + s.l.cfg.Domain + " are accepted"}
	}
	s.to = append(s.to, to)
	return nil
}

// Data keeps and records the message. Only a failure to keep or record it (the database) is
// answered with an error, a temporary one, so that the sender tries again: mail that is no
// report, or names no notification, is answered 250 like the rest.
//
// Only the message's first MaxStoredBytes are read into memory, which is all that is kept: the
// report's own parts come first and the returned message after them, so they are whole in it;
// the rest is read and counted, not held.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(r, MaxStoredBytes))
	if err != nil {
		return err // ErrDataTooLarge is a 552
	}
	rest, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	env := Envelope{RemoteAddr: s.remote, From: s.from, To: append([]string(nil), s.to...), Size: int64(len(raw)) + rest}
	res, err := s.l.recorder.Receive(ctx, env, raw)
	if err != nil {
		s.l.logger.Error("record inbound report", "report_id", res.ReportID, "remote_addr", s.remote, "error", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot record the report now; try again later"}
	}
	return nil
}

func (s *session) Reset() {
	s.from = ""
	s.to = nil
}

// Logout ends the conversation; go-smtp may call it more than once.
func (s *session) Logout() error {
	s.ended.Do(func() { s.l.sessions.Add(-1) })
	return nil
}

// slogPrinter is go-smtp's error log, through slog.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.logger.Warn("bounce listener", "error", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (p slogPrinter) Println(v ...any) {
	p.logger.Warn("bounce listener", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}
