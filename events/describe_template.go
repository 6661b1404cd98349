package events

import (
	"fmt"
	"strings"
)

// Template: what changed in a stored template, in words.
func (v *describer) Template(e TemplateEvent) { e.AcceptTemplate(v) }

// TemplateVersionCreated: which version of which template, for which channel, and what it
// declares: template welcome v2 (email; variables name, plan=free).
func (v *describer) TemplateVersionCreated(e *TemplateVersionCreated) {
	vars := make([]string, len(e.Variables))
	for i, tv := range e.Variables {
		vars[i] = tv.Name
		if tv.Default != nil {
			vars[i] += "=" + *tv.Default
		}
	}
	v.text = fmt.Sprintf("template %s v%d (%s", e.Name, e.Version, e.Channel)
	if len(vars) > 0 {
		v.text += "; variables " + strings.Join(vars, ", ")
	}
	v.text += ")"
}

// TemplateArchived: which template, and why.
func (v *describer) TemplateArchived(e *TemplateArchived) {
	v.text = fmt.Sprintf("template %s archived", e.Name)
	if e.Reason != "" {
		v.text += ": " + e.Reason
	}
}

// TemplateRestored: which template, and why.
func (v *describer) TemplateRestored(e *TemplateRestored) {
	v.text = fmt.Sprintf("template %s restored", e.Name)
	if e.Reason != "" {
		v.text += ": " + e.Reason
	}
}
