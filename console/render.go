package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/herald-notify/herald"
)

// pages are the console's templates, each page parsed with the layout.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05.000Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05.000Z")
		}
		return fmt.Sprint(t)
	},
	"join": strings.Join,
}

// loadPages parses every page under templates/ with the layout; a template that does not parse is
// a bug in the binary, found by the first test.
func loadPages() *pages {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		if path.Base(n) == "layout.html" {
			continue
		}
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", n))
		p.byName[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return p
}

// view is what the layout needs around a page's own data.
type view struct {
	Page    string
	Prefix  string
	Session Session
	// Data is the page's own data.
	Data any
}

// render writes page with data, and code.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	t, ok := c.pages.byName[page]
	if !ok {
		c.fail(w, r, fmt.Errorf("no console page %q", page))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", view{Page: page, Prefix: Prefix, Session: sessionFrom(r.Context()), Data: data}); err != nil {
		c.logger.ErrorContext(r.Context(), "console page", "page", page, "error", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// statusOf maps an error's code to an HTTP status, as the API does.
var statusOf = map[string]int{
	herald.EINVALID:      http.StatusBadRequest,
	herald.ENOTFOUND:     http.StatusNotFound,
	herald.ECONFLICT:     http.StatusConflict,
	herald.EUNAUTHORIZED: http.StatusUnauthorized,
	herald.EFORBIDDEN:    http.StatusForbidden,
	herald.EUNAVAILABLE:  http.StatusServiceUnavailable,
}

// fail shows err on an error page: its message, unless it is internal, which is logged instead.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, ok := statusOf[herald.ErrorCode(err)]
	msg := herald.ErrorMessage(err)
	if !ok {
		code = http.StatusInternalServerError
		msg = "something went wrong on our side; it was logged"
		c.logger.ErrorContext(r.Context(), "console", "path", r.URL.Path, "error", err, "correlation_id", herald.CorrelationID(r.Context()))
	}
	c.render(w, r, code, "error", map[string]any{"Message": msg, "Fields": herald.ErrorFields(err)})
}
