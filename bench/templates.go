package bench

import (
	"context"
	"fmt"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
)

// The stored templates a run with --template sends by: the very templates the load otherwise
// carries in each request.
const (
	emailTemplate      = "bench-email"
	smsTemplate        = "bench-sms"
	newsletterTemplate = "bench-newsletter"
)

// benchText is the small text template of the load, and its subject.
const (
	benchText    = "Hello {{.name}}, this is notification {{.n}} of the bench."
	benchSubject = "Bench {{.n}}"
)

// createTemplates stores the load's templates in the database of the Herald under test.
func createTemplates(ctx context.Context, db templatestore.DB) error {
	vars := func(names ...string) []events.TemplateVariable {
		out := make([]events.TemplateVariable, len(names))
		for i, n := range names {
			out[i] = events.TemplateVariable{Name: n}
		}
		return out
	}
	store := templatestore.New(db)
	for name, d := range map[string]templatestore.Draft{
		emailTemplate: {Channel: herald.ChannelEmail, Subject: benchSubject, Content: benchText, Variables: vars("name", "n")},
		smsTemplate:   {Channel: herald.ChannelSMS, Content: benchText, Variables: vars("name", "n")},
		newsletterTemplate: {Channel: herald.ChannelEmail, Subject: "{{.company}} news, issue {{.issue}}", HTML: newsletter,
			Variables: vars("name", "email", "n", "issue", "date", "company", "logo_url", "view_url", "preferences_url", "unsubscribe_url")},
	} {
		if _, err := store.Create(ctx, name, d, "herald bench"); err != nil {
			return fmt.Errorf("store template %s: %w", name, err)
		}
	}
	return nil
}
