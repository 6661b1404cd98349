package templates

import (
	"fmt"
	"strings"

	"golang.org/x/net/html"
)

// documentAttributes are attributes whose value a browser parses as a whole HTML document.
// html/template escapes a value there as plain attribute text, which the browser decodes before
// it parses the document, so markup in a variable would run there: an HTML part may not have
// them at all.
var documentAttributes = map[string]bool{"srcdoc": true}

// htmlProblem says what in an HTML template's source the escaping cannot protect, or "" when
// nothing is. The tokenizer reads the template as HTML, its actions as text.
func htmlProblem(content string) string {
	// An attribute's name is the source's own bytes, lowercased: a source that never spells one
	// of them, in any case, has none, and needs no tokenizing (a third of an HTML send's check).
	if !mentionsDocumentAttribute(content) {
		return ""
	}
	z := html.NewTokenizer(strings.NewReader(content))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			tag, more := z.TagName()
			for more {
				var key []byte
				key, _, more = z.TagAttr()
				if documentAttributes[strings.ToLower(string(key))] {
					return fmt.Sprintf("the %s attribute of <%s> is not allowed: its value is parsed as a whole HTML document, where escaping does not protect", key, tag)
				}
			}
		}
	}
}

// mentionsDocumentAttribute reports whether content spells a documentAttributes name anywhere,
// in any case.
func mentionsDocumentAttribute(content string) bool {
	for name := range documentAttributes {
		for i := 0; i+len(name) <= len(content); i++ {
			if content[i]|0x20 == name[0] && strings.EqualFold(content[i:i+len(name)], name) {
				return true
			}
		}
	}
	return false
}
