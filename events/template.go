package events

import "github.com/herald-notify/herald"

// A stored template is kept as events of a stream of its own (one per template name,
// TemplateStream in package templatestore): each create or update is a new, immutable version
// carrying the whole template, and archiving or restoring it is a fact with its actor and
// reason. Like the endpoints' and the suppression list's events they are a family of their own:
// they say nothing about any one notification, so every notification's fold, read model and
// webhook leaves them out, and the places that must know each of them implement
// TemplateVisitor.

// TemplateEvent is a fact in a template's stream.
type TemplateEvent interface {
	Event
	// AcceptTemplate calls v's method for the event's type, with the event.
	AcceptTemplate(v TemplateVisitor)
}

// TemplateVisitor has one method per template event type.
type TemplateVisitor interface {
	TemplateVersionCreated(*TemplateVersionCreated)
	TemplateArchived(*TemplateArchived)
	TemplateRestored(*TemplateRestored)
}

// Template event type names, as stored in event_log.event_type.
const (
	TypeTemplateVersionCreated = "TemplateVersionCreated"
	TypeTemplateArchived       = "TemplateArchived"
	TypeTemplateRestored       = "TemplateRestored"
)

// TemplateVariable is a variable a template declares: every variable its parts use is declared,
// and one with a Default may be left out of a send.
type TemplateVariable struct {
	Name    string  `json:"name"`
	Default *string `json:"default,omitempty"`
}

// TemplateVersionCreated records a template's version Version, whole: version 1 creates the
// template, each later one replaces what the name resolves to, and none is ever changed.
type TemplateVersionCreated struct {
	Name    string         `json:"name"`
	Version int            `json:"version"`
	Channel herald.Channel `json:"channel"`
	// Subject (email only), Content and HTML are templates in the send path's language; an email
	// has Content, HTML or both, an SMS only Content.
	Subject     string             `json:"subject,omitempty"`
	Content     string             `json:"content,omitempty"`
	HTML        string             `json:"html,omitempty"`
	Variables   []TemplateVariable `json:"variables"`
	Description string             `json:"description,omitempty"`
}

// TemplateArchived records that the template's name no longer resolves to its latest version
// for new sends, and that it takes no new version until it is restored.
type TemplateArchived struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// TemplateRestored records that an archived template is in use again.
type TemplateRestored struct {
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
}

func (TemplateVersionCreated) EventType() string { return TypeTemplateVersionCreated }
func (TemplateArchived) EventType() string       { return TypeTemplateArchived }
func (TemplateRestored) EventType() string       { return TypeTemplateRestored }

func (e *TemplateVersionCreated) Accept(v Visitor) { v.Template(e) }
func (e *TemplateArchived) Accept(v Visitor)       { v.Template(e) }
func (e *TemplateRestored) Accept(v Visitor)       { v.Template(e) }

func (e *TemplateVersionCreated) AcceptTemplate(v TemplateVisitor) { v.TemplateVersionCreated(e) }
func (e *TemplateArchived) AcceptTemplate(v TemplateVisitor)       { v.TemplateArchived(e) }
func (e *TemplateRestored) AcceptTemplate(v TemplateVisitor)       { v.TemplateRestored(e) }
