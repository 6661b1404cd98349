// Package redact keeps secrets out of what Herald prints: passwords in connection URLs, and the
// values of settings that are secrets (SMTP password, SMS auth token, ...), in help, logs, errors
// and answers.
//
// Two layers work together. URL and Text mask the password of anything shaped like a URL with
// credentials (scheme://user:password@host) or a key/value connection string (password=...),
// whatever value it has. Secrets also masks values known to be secret wherever they appear —
// needed because drivers quote connection strings they cannot parse, and a malformed URL is
// exactly the one a pattern cannot take apart reliably.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask replaces a secret. It is what net/url's Redacted writes.
const Mask = "xxxxx"

// MinLength is the shortest value Secrets masks wherever it appears: masking every "a" or "pw"
// in a log would garble it. Shorter passwords are still masked inside URLs and connection
// strings.
const MinLength = 4

// URL returns raw with the password of its user information replaced by Mask. raw need not be
// a valid URL: a string url.Parse refuses is masked by pattern (see Text). raw may name several
// URLs, separated by commas (a cluster's nodes): each one's password is masked.
func URL(raw string) string {
	urls := URLs(raw)
	if len(urls) < 2 {
		return oneURL(raw)
	}
	for i, u := range urls {
		urls[i] = oneURL(u)
	}
	return strings.Join(urls, ",")
}

// URLs cuts raw into the URLs it names, separated by commas: a piece that does not start with a
// scheme (scheme://) continues the piece before it, as a password or a list of hosts may hold a
// comma.
func URLs(raw string) []string {
	var out []string
	for _, piece := range strings.Split(raw, ",") {
		if len(out) > 0 && !startsWithScheme.MatchString(piece) {
			out[len(out)-1] += "," + piece
			continue
		}
		out = append(out, piece)
	}
	return out
}

var startsWithScheme = regexp.MustCompile(`^\s*[a-zA-Z][a-zA-Z0-9+.\-]*://`)

// oneURL is URL for one URL. A password the pattern could not find (one holding an unescaped /,
// in a URL url.Parse refuses) is masked where Password, taking it out by hand, found it.
func oneURL(raw string) string {
	masked := oneURLParsed(raw)
	if pw := Password(raw); pw != "" {
		masked = strings.ReplaceAll(masked, ":"+pw+"@", ":"+Mask+"@")
	}
	return masked
}

func oneURLParsed(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		return raw
	}
	return Text(raw)
}

var (
	// userinfo is the scheme and user of a URL with a password, then the password: everything
	// up to the last @ before the host's end, so a password with an unescaped @ is masked whole.
	// A / ends the search, so host:port/path@x is not taken for credentials.
	userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:@"'` + "`" + `]*:)[^\s/"'` + "`" + `]*@`)
	// keyword is a password in a key/value connection string (libpq's password=...), quoted
	// or not.
	keyword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"` + "`" + `]+)`)
)

// Text returns s with the password of every URL with credentials (scheme://user:password@) and
// every password=... of a connection string in it replaced by Mask.
func Text(s string) string {
	if strings.Contains(s, "://") {
		s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	}
	if strings.Contains(s, "password") || strings.Contains(s, "PASSWORD") || strings.Contains(s, "Password") {
		s = keyword.ReplaceAllString(s, "${1}"+Mask)
	}
	return s
}

// Password returns the password raw carries — the user information's password of a URL, or
// the password keyword of a key/value connection string — or "" if it carries none. A URL that
// does not parse is taken apart by hand, as loosely as a driver's error would quote it.
func Password(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		p, _ := u.User.Password()
		return p
	}
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return ""
		}
		_, p, _ := strings.Cut(rest[:at], ":")
		if unescaped, err := url.PathUnescape(p); err == nil {
			return unescaped
		}
		return p
	}
	if m := keyword.FindStringSubmatch(raw); m != nil {
		return strings.Trim(m[2], "'")
	}
	return ""
}

// Secrets masks a set of secret values, and every URL password (see Text), in what it is given.
// The nil *Secrets masks URL passwords only.
type Secrets struct {
	values   []string
	replacer *strings.Replacer
}

// New returns Secrets masking values. Empty values and values shorter than MinLength are left
// to Text. The URL-escaped forms of each value are masked too, since a URL quoted in an error
// carries its password escaped; so are the pieces of a value between URL delimiters, since a
// URL whose password holds an unescaped "/" or "@" is cut there by the parser, whose error then
// quotes a piece ("invalid port \":piece\" after host").
func New(values ...string) *Secrets {
	var vs []string
	add := func(form string) {
		if len(form) >= MinLength && !slices.Contains(vs, form) {
			vs = append(vs, form)
		}
	}
	for _, v := range values {
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), url.UserPassword("", v).String()[1:]} {
			add(form)
		}
		for _, piece := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune("/?#@:", r) }) {
			add(piece)
		}
	}
	// Longest first, so a value containing another is masked whole.
	slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
	s := &Secrets{values: vs}
	if len(vs) > 0 {
		pairs := make([]string, 0, 2*len(vs))
		for _, v := range vs {
			pairs = append(pairs, v, Mask)
		}
		s.replacer = strings.NewReplacer(pairs...)
	}
	return s
}

// With returns Secrets masking what s masks and values too. s may be nil.
func (s *Secrets) With(values ...string) *Secrets {
	if s == nil {
		return New(values...)
	}
	return New(append(slices.Clone(s.values), values...)...)
}

// String returns text with every secret in it masked.
func (s *Secrets) String(text string) string {
	if s != nil && s.replacer != nil && s.in(text) {
		text = s.replacer.Replace(text)
	}
	return Text(text)
}

// in reports whether text holds a secret. It is cheaper than Replace, which copies text even when
// there is nothing to mask: most log lines hold no secret.
func (s *Secrets) in(text string) bool {
	for _, v := range s.values {
		if strings.Contains(text, v) {
			return true
		}
	}
	return false
}

// Error returns err with its message masked; errors.Is and errors.As still see err. It returns
// nil for nil.
func (s *Secrets) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := s.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &maskedError{msg: msg, err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// Handler returns a slog.Handler that masks secrets in every record's message and attributes
// before h sees them. Attribute values that are not strings (errors, structs, ...) are logged as
// their masked text.
func (s *Secrets) Handler(h slog.Handler) slog.Handler { return &handler{next: h, secrets: s} }

type handler struct {
	next    slog.Handler
	secrets *Secrets
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	msg := h.secrets.String(r.Message)
	changed := msg != r.Message
	if !changed {
		r.Attrs(func(a slog.Attr) bool {
			_, changed = h.attr(a)
			return !changed
		})
	}
	if !changed {
		return h.next.Handle(ctx, r) // the usual case: nothing to mask, nothing copied
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		m, _ := h.attr(a)
		out.AddAttrs(m)
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i], _ = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(masked), secrets: h.secrets}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), secrets: h.secrets}
}

// attr returns a masked, and whether masking changed it.
func (h *handler) attr(a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if masked := h.secrets.String(v.String()); masked != v.String() {
			return slog.String(a.Key, masked), true
		}
	case slog.KindGroup:
		group := v.Group()
		masked := make([]any, len(group))
		changed := false
		for i, g := range group {
			m, ok := h.attr(g)
			masked[i], changed = m, changed || ok
		}
		if changed {
			return slog.Group(a.Key, masked...), true
		}
	case slog.KindAny:
		text := fmt.Sprint(v.Any())
		if masked := h.secrets.String(text); masked != text {
			return slog.String(a.Key, masked), true
		}
	}
	// Resolved: a LogValuer is not asked again, and could not answer differently unmasked.
	return slog.Attr{Key: a.Key, Value: v}, v.Kind() != a.Value.Kind()
}
