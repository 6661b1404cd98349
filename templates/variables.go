package templates

import (
	htmltemplate "html/template"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Variables checks content as Render would, without variables to fill it — that it parses and
// stays within the allowed subset — and returns the top-level variables it names, sorted: those
// it needs and those it examines with default. Errors are EINVALID *herald.Error values naming
// field. A stored template is checked this way when it is saved, long before it is sent.
func Variables(field, content string) ([]string, error) { return variables(field, content, false) }

// variables checks content in the subset of a text part, or of an HTML part when html is set,
// and names its top-level variables.
func variables(field, content string, html bool) ([]string, error) {
	if strings.TrimSpace(content) == "" {
		return nil, invalid(field+" is required", field, "is required")
	}
	if !utf8.ValidString(content) {
		return nil, invalid(field+" is not valid UTF-8", field, "is not valid UTF-8")
	}
	tree, err := parseContent(field, content)
	if err != nil {
		return nil, err
	}
	c := newChecker(tree, content, html)
	c.node(tree.Root, scope{rootDot: true})
	if html && c.problem == "" {
		c.problem = htmlProblem(content)
	}
	if c.problem != "" {
		return nil, invalid(field+" uses a template feature that is not allowed", field, c.problem)
	}
	names := maps.Clone(c.required)
	maps.Copy(names, c.optional)
	return slices.Sorted(maps.Keys(names)), nil
}

// HTMLVariables is Variables for an HTML part: the same subset, which must also parse as an
// html/template. It checks parsing only: html/template decides how each action is escaped when
// it first executes, so a part whose actions sit where no escaping is possible is refused then,
// when it is rendered, not here.
func HTMLVariables(field, content string) ([]string, error) {
	names, err := variables(field, content, true)
	if err != nil {
		return nil, err
	}
	funcs := htmltemplate.FuncMap{
		"upper":   strings.ToUpper,
		"lower":   strings.ToLower,
		"trim":    strings.TrimSpace,
		"default": defaultValue,
	}
	if _, err := htmltemplate.New(field).Funcs(funcs).Parse(content); err != nil {
		return nil, invalid(field+" is not a valid HTML template", field, parseProblem(field, err))
	}
	return names, nil
}
