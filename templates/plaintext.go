package templates

import (
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// PlainText returns the readable text of an HTML document, for the text/plain part of an email
// sent with HTML only: block elements start new lines (paragraphs and headings a blank line),
// <br> breaks a line, list items start with "- " or their number, table cells are separated by a
// space, a link reads "text (url)", an image its alt text; entities are decoded and runs of
// white space collapsed outside <pre>. Scripts, styles, the head and templates are left out.
//
// The document is read by golang.org/x/net/html's parser, as a browser reads it: malformed
// markup is repaired the same way, and nothing in it is executed or fetched.
func PlainText(document string) (string, error) {
	root, err := html.ParseWithOptions(strings.NewReader(document), html.ParseOptionEnableScripting(false))
	if err != nil {
		return "", err
	}
	w := &textWriter{}
	w.walk(root)
	return w.String(), nil
}

// textWriter collects text, holding back white space and line breaks until text follows them, so
// that neither leads nor trails nor piles up.
type textWriter struct {
	b strings.Builder
	// breaks is how many line breaks are due before the next text; space whether a space is.
	breaks int
	space  bool
	pre    int // depth of <pre> elements around the current node
	// numbered is, for each ordered list met, the number of its last item written: items are
	// numbered as they are walked, not by counting their elder siblings (quadratic in a list's
	// length, which a client chooses).
	numbered map[*html.Node]int
}

// blockBreaks is how many line breaks surround each block element: 2 leaves a blank line.
var blockBreaks = map[atom.Atom]int{
	atom.P: 2, atom.H1: 2, atom.H2: 2, atom.H3: 2, atom.H4: 2, atom.H5: 2, atom.H6: 2,
	atom.Blockquote: 2, atom.Pre: 2, atom.Table: 2, atom.Ul: 2, atom.Ol: 2, atom.Dl: 2, atom.Hr: 2,
	atom.Div: 1, atom.Section: 1, atom.Article: 1, atom.Header: 1, atom.Footer: 1, atom.Nav: 1,
	atom.Aside: 1, atom.Main: 1, atom.Address: 1, atom.Figure: 1, atom.Figcaption: 1,
	atom.Form: 1, atom.Fieldset: 1, atom.Tr: 1, atom.Li: 1, atom.Dt: 1, atom.Dd: 1,
	atom.Center: 1, atom.Caption: 1, atom.Tbody: 1, atom.Thead: 1, atom.Tfoot: 1,
}

// skipped elements hold no text a reader sees.
var skipped = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Template: true, atom.Title: true,
	atom.Iframe: true, atom.Object: true, atom.Svg: true, atom.Math: true,
	atom.Xmp: true, atom.Noembed: true, atom.Noframes: true, atom.Plaintext: true,
}

func (w *textWriter) walk(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		w.text(n.Data)
		return
	case html.ElementNode:
		w.element(n)
		return
	case html.CommentNode, html.DoctypeNode:
		return
	}
	w.children(n)
}

func (w *textWriter) children(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c)
	}
}

func (w *textWriter) element(n *html.Node) {
	if skipped[n.DataAtom] {
		return
	}
	breaks := blockBreaks[n.DataAtom]
	w.lineBreaks(breaks)
	switch n.DataAtom {
	case atom.Br:
		w.breaks++
		w.space = false
	case atom.Hr:
		w.emit("----")
	case atom.Img:
		if alt := strings.Join(strings.Fields(attr(n, "alt")), " "); alt != "" {
			w.emit(alt)
		}
	case atom.Td, atom.Th:
		w.space = true
		w.children(n)
		w.space = true
	case atom.Li:
		w.emit(w.listMarker(n))
		w.space = true
		w.children(n)
	case atom.Pre:
		w.pre++
		w.children(n)
		w.pre--
	case atom.A:
		w.link(n)
	default:
		w.children(n)
	}
	w.lineBreaks(breaks)
}

// link writes a link as "text (url)", or only the text when the url says nothing more: it is
// the text itself, or a place in the same document.
func (w *textWriter) link(n *html.Node) {
	inner := &textWriter{pre: w.pre}
	inner.children(n)
	text := inner.String()
	href := strings.TrimSpace(attr(n, "href"))
	switch {
	case text == "" && href == "":
	case text == "":
		w.emit(href)
	case href == "" || strings.HasPrefix(href, "#") || href == text || href == "mailto:"+text:
		w.emit(text)
	default:
		w.emit(text)
		w.space = true
		w.emit("(" + href + ")")
	}
}

// listMarker is "1." for the first item of an ordered list (counting from its start attribute),
// the next number for each later item, and "-" for any other list item.
func (w *textWriter) listMarker(li *html.Node) string {
	list := li.Parent
	if list == nil || list.DataAtom != atom.Ol {
		return "-"
	}
	if w.numbered == nil {
		w.numbered = map[*html.Node]int{}
	}
	number, seen := w.numbered[list]
	if !seen {
		number = 0
		if start, err := strconv.Atoi(strings.TrimSpace(attr(list, "start"))); err == nil {
			number = start - 1
		}
	}
	number++
	w.numbered[list] = number
	return strconv.Itoa(number) + "."
}

// text writes the text of a text node: as it is inside <pre>, with white space collapsed
// elsewhere.
func (w *textWriter) text(s string) {
	if w.pre > 0 {
		if s != "" {
			w.emit(s)
		}
		return
	}
	words := strings.Fields(s)
	if len(words) == 0 {
		if s != "" {
			w.space = true
		}
		return
	}
	if isSpace(s[0]) {
		w.space = true
	}
	w.emit(strings.Join(words, " "))
	if isSpace(s[len(s)-1]) {
		w.space = true
	}
}

// emit writes s after the line breaks or space due, unless s is the first text.
func (w *textWriter) emit(s string) {
	if w.b.Len() > 0 {
		switch {
		case w.breaks > 0:
			// A line ends without the space that was due before it.
			w.b.WriteString(strings.Repeat("\n", w.breaks))
		case w.space:
			w.b.WriteByte(' ')
		}
	}
	w.breaks, w.space = 0, false
	w.b.WriteString(s)
}

// lineBreaks makes at least n line breaks due before the next text.
func (w *textWriter) lineBreaks(n int) {
	if n > 0 {
		w.breaks = max(w.breaks, n)
		w.space = false
	}
}

// String is the text written, without white space at the ends of lines.
func (w *textWriter) String() string {
	lines := strings.Split(w.b.String(), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(line, " \t")
	}
	return strings.Join(lines, "\n")
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f'
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == name {
			return a.Val
		}
	}
	return ""
}
