// Package templates owns the rendering of notification content: a small, safe subset of Go's
// text/template, filled with the client's variables, and the same subset in html/template for the
// HTML part of an email (RenderHTML), with the plain text read back from that HTML (PlainText).
//
// Content and variables both come from API clients, so the subset is chosen for bounded work
// and plain text output:
//
//   - Actions: {{.name}}, {{.user.name}}, {{$.name}}, variables ({{$x := .a}}), if/else,
//     with/else, range/else with break and continue, comments and {{- -}} trimming.
//   - Functions: eq, ne, lt, le, gt, ge, and, or, not, len, index, upper, lower, trim and
//     default. Everything else text/template offers is refused before rendering: printf, print
//     and println (a width like %999999999d allocates without bound), call, html, js, urlquery,
//     slice, and the template, define and block actions.
//   - range iterates over a variable only ({{range .items}}, {{range $.items}}, {{range .}}),
//     never over a number, and never inside another range. A loop whose item count times the
//     size of its body exceeds a fixed work budget is stopped, as is any output longer than the
//     caller's limit.
//
// Every variable the content names at the top level must be given; Render reports all that are
// not. The one exception is default: a variable used only as the value default examines,
// {{default "friend" .name}} or {{.name | default "friend"}}, may be left out, and default then
// returns the fallback. default also returns the fallback for null, "" and empty lists and
// objects; 0 and false are values, not absences, and are kept. Inside with and range, dot is no
// longer the variables, so a missing nested key is an error even as default's argument. To make
// a section optional, wrap it: {{with default "" .nick}}Hi {{.}}{{end}}.
//
// Variables are JSON decoded with UseNumber. JSON null renders as an empty string rather than
// text/template's "<no value>". Integers become int64, so {{if gt .count 1}} and {{index .list
// .i}} work; other numbers stay json.Number, which renders exactly as the client wrote it
// (9.50 stays 9.50) but compares only as text.
//
// RenderHTML takes the same subset, functions and checks, and executes the template with
// html/template, whose contextual escaping escapes every value for where it lands: element text,
// attribute values, URLs (a javascript: URL becomes "#ZgotmplZ"), JavaScript and CSS. A
// template whose contexts cannot be escaped safely (an action inside an unquoted or unfinished
// attribute that html/template cannot place) is refused with its position, before any output.
package templates

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/herald-notify/herald"
)

// Render parses content (named by field, e.g. "content" or "subject", used as the key in error
// Fields), checks that it stays within the allowed subset, and executes it with vars. The output
// may be at most maxOutput bytes. Errors are EINVALID *herald.Error values with Fields naming
// the offending part: field for parse/subset errors, "variables.NAME" for a missing variable.
//
// A rendering that would exceed a fixed work budget is refused the same way, on field. vars is
// read, never modified. Size limits on content itself are the caller's, which knows them per
// channel.
func Render(field, content string, vars map[string]any, maxOutput int) (string, error) {
	return render(field, content, vars, maxOutput, false)
}

// RenderHTML is Render for an HTML template: the same subset, functions, checks and errors,
// executed by html/template so that every value is escaped for its context. An action that
// html/template cannot escape safely is refused on field with its position.
func RenderHTML(field, content string, vars map[string]any, maxOutput int) (string, error) {
	return render(field, content, vars, maxOutput, true)
}

func render(field, content string, vars map[string]any, maxOutput int, html bool) (string, error) {
	if strings.TrimSpace(content) == "" {
		return "", invalid(field+" is required", field, "is required")
	}
	if !utf8.ValidString(content) {
		return "", invalid(field+" is not valid UTF-8", field, "is not valid UTF-8")
	}
	tree, err := parseContent(field, content)
	if err != nil {
		return "", err
	}
	data, longest, err := copyVariables(vars)
	if err != nil {
		return "", err
	}

	c := newChecker(tree, content, html)
	top := c.node(tree.Root, scope{rootDot: true})
	if html && c.problem == "" {
		c.problem = htmlProblem(content)
	}
	if c.problem != "" {
		return "", invalid(field+" uses a template feature that is not allowed", field, c.problem)
	}
	if err := c.resolve(field, data); err != nil {
		return "", err
	}
	// String literals are compared and searched like variables are.
	longest = max(longest, c.longestLiteral)
	spent := top.steps(longest)
	if spent > maxSteps {
		return "", invalid(field+" needs too much work to render", field,
			"needs too much work to render: use fewer actions or shorter variables")
	}

	funcs := template.FuncMap{
		"upper":   textFunction("upper", strings.ToUpper),
		"lower":   textFunction("lower", strings.ToLower),
		"trim":    textFunction("trim", strings.TrimSpace),
		"default": defaultValue,
	}
	for i, body := range c.loops {
		funcs[guardName(i)] = rangeGuard(body.steps(longest), &spent)
	}
	execute, err := executor(field, tree, funcs, html)
	if err != nil {
		return "", err
	}
	w := &limitedWriter{max: maxOutput}
	if err := execute(w, data); err != nil {
		if w.exceeded {
			return "", tooLong(field, maxOutput)
		}
		var escapeErr *htmltemplate.Error
		if errors.As(err, &escapeErr) {
			return "", invalid(field+" cannot be escaped safely", field, escapeProblem(content, escapeErr))
		}
		return "", invalid(field+" could not be rendered", field, execProblem(field, err))
	}
	out := w.buf.String()
	if !utf8.ValidString(out) {
		// Valid content and variables concatenate to valid UTF-8; this guards the functions.
		return "", invalid(field+" renders to invalid UTF-8", field, "renders to invalid UTF-8")
	}
	return out, nil
}

// executor returns the execution of the checked tree: by text/template, or by html/template,
// which escapes the tree (adding its escaping functions to every action) at the first execution.
func executor(field string, tree *parse.Tree, funcs template.FuncMap, html bool) (func(io.Writer, any) error, error) {
	if html {
		t, err := htmltemplate.New(field).Option("missingkey=error").Funcs(funcs).AddParseTree(field, tree)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", field, err)
		}
		// The template AddParseTree returns holds the tree; the one it was called on does not.
		return t.Execute, nil
	}
	t := template.New(field).Option("missingkey=error").Funcs(funcs)
	if _, err := t.AddParseTree(field, tree); err != nil {
		return nil, fmt.Errorf("render %s: %w", field, err)
	}
	return t.Execute, nil
}

// escapeProblem says where and why html/template refused to escape the template: "line 1,
// column 10: ..." from the node when it knows it.
func escapeProblem(content string, err *htmltemplate.Error) string {
	// The description ends with html/template's internal contexts ({stateURL delimDoubleQuote
	// ...}), which mean nothing to a client.
	problem := err.Description
	if i := strings.Index(problem, ": {state"); i >= 0 {
		problem = problem[:i]
	}
	where := ""
	switch {
	case err.ErrorCode == htmltemplate.ErrEndContext:
		where = "line " + strconv.Itoa(1+strings.Count(content, "\n"))
		problem = "ends inside a tag, an attribute, a comment, a script or a style: close it"
	case err.Node != nil:
		where = position(content, err.Node)
	case err.Line > 0:
		where = fmt.Sprintf("line %d", err.Line)
	}
	if where == "" {
		return problem
	}
	return where + ": " + problem
}

// parseContent parses content without resolving functions, so that the checker, not the
// parser, decides which names are allowed and says why.
func parseContent(field, content string) (*parse.Tree, error) {
	tree := parse.New(field)
	tree.Mode = parse.SkipFuncCheck
	trees := make(map[string]*parse.Tree)
	if _, err := tree.Parse(content, "", "", trees); err != nil {
		return nil, invalid(field+" is not a valid template", field, parseProblem(field, err))
	}
	// define and block leave extra trees behind, or replace the main one when it is blank.
	if len(trees) != 1 || trees[field] != tree {
		return nil, invalid(field+" uses a template feature that is not allowed", field,
			"{{define}} and {{block}} are not allowed")
	}
	return tree, nil
}

// parseProblem rewrites "template: content:3: unexpected ..." as "line 3: unexpected ...": the
// client did not name a template and has no use for the word.
func parseProblem(field string, err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+field+":")
	if !ok {
		return strings.TrimPrefix(msg, "template: ")
	}
	line, cause, ok := strings.Cut(rest, ": ")
	if _, err := strconv.Atoi(line); !ok || err != nil {
		return strings.TrimSpace(rest)
	}
	return "line " + line + ": " + cause
}

// execProblem rewrites an execution error, `template: content:1:8: executing "content" at
// <.user.name>: map has no entry for key "name"`, as `line 1, column 9 (.user.name): map has no
// entry for key "name"`, keeping the position and the cause.
func execProblem(field string, err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+field+":")
	if !ok {
		return strings.TrimPrefix(msg, "template: ")
	}
	lineText, rest, _ := strings.Cut(rest, ":")
	colText, rest, _ := strings.Cut(rest, ": ")
	line, lineErr := strconv.Atoi(lineText)
	col, colErr := strconv.Atoi(colText)
	if lineErr != nil || colErr != nil {
		// No position: the error is about the template as a whole.
		return strings.TrimSpace(strings.TrimPrefix(msg, "template: "+field+":"))
	}
	// text/template counts columns from 0; editors count from 1.
	where := fmt.Sprintf("line %d, column %d", line, col+1)

	var re *rangeError
	if errors.As(err, &re) {
		return where + ": " + re.msg
	}
	rest = strings.TrimPrefix(rest, "executing "+strconv.Quote(field)+" ")
	if context, ok := strings.CutPrefix(rest, "at <"); ok {
		if context, cause, ok := strings.Cut(context, ">: "); ok {
			return where + " (" + context + "): " + cause
		}
	}
	return where + ": " + rest
}

// position is where n starts in content, as an editor shows it.
func position(content string, n parse.Node) string {
	pos := min(max(int(n.Position()), 0), len(content))
	before := content[:pos]
	line := 1 + strings.Count(before, "\n")
	col := pos - (strings.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

func invalid(message, field, problem string) *herald.Error {
	return herald.Invalid(message, map[string]string{field: problem})
}

func tooLong(field string, maxOutput int) *herald.Error {
	problem := fmt.Sprintf("renders to more than %d bytes", maxOutput)
	return invalid(field+" "+problem, field, problem)
}

// limitedWriter collects output and fails the write that would take it past max, which stops
// text/template at once instead of after the whole (possibly huge) rendering.
type limitedWriter struct {
	buf      strings.Builder
	max      int
	exceeded bool
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.max-w.buf.Len() {
		w.exceeded = true
		return 0, errors.New("output limit reached")
	}
	return w.buf.Write(p)
}
