package events_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// visited records which Visitor method an event's Accept called.
type visited struct{ method string }

func (v *visited) NotificationQueued(*events.NotificationQueued) { v.method = "NotificationQueued" }
func (v *visited) NotificationProcessing(*events.NotificationProcessing) {
	v.method = "NotificationProcessing"
}
func (v *visited) NotificationSent(*events.NotificationSent) { v.method = "NotificationSent" }
func (v *visited) DeliveryAttemptFailed(*events.DeliveryAttemptFailed) {
	v.method = "DeliveryAttemptFailed"
}
func (v *visited) NotificationFailed(*events.NotificationFailed) { v.method = "NotificationFailed" }
func (v *visited) NotificationRequeued(*events.NotificationRequeued) {
	v.method = "NotificationRequeued"
}
func (v *visited) NotificationDiscarded(*events.NotificationDiscarded) {
	v.method = "NotificationDiscarded"
}
func (v *visited) NotificationRecovered(*events.NotificationRecovered) {
	v.method = "NotificationRecovered"
}

func (v *visited) NotificationDelivered(*events.NotificationDelivered) {
	v.method = "NotificationDelivered"
}
func (v *visited) NotificationUndelivered(*events.NotificationUndelivered) {
	v.method = "NotificationUndelivered"
}
func (v *visited) NotificationBounced(*events.NotificationBounced) { v.method = "NotificationBounced" }
func (v *visited) NotificationComplained(*events.NotificationComplained) {
	v.method = "NotificationComplained"
}
func (v *visited) NotificationCancelled(*events.NotificationCancelled) {
	v.method = "NotificationCancelled"
}
func (v *visited) NotificationReleased(*events.NotificationReleased) {
	v.method = "NotificationReleased"
}
func (v *visited) WebhookEndpoint(e events.EndpointEvent) { e.AcceptEndpoint(v) }
func (v *visited) WebhookEndpointCreated(*events.WebhookEndpointCreated) {
	v.method = "WebhookEndpointCreated"
}
func (v *visited) WebhookEndpointUpdated(*events.WebhookEndpointUpdated) {
	v.method = "WebhookEndpointUpdated"
}
func (v *visited) WebhookEndpointDisabled(*events.WebhookEndpointDisabled) {
	v.method = "WebhookEndpointDisabled"
}
func (v *visited) WebhookEndpointEnabled(*events.WebhookEndpointEnabled) {
	v.method = "WebhookEndpointEnabled"
}
func (v *visited) WebhookEndpointSecretRotated(*events.WebhookEndpointSecretRotated) {
	v.method = "WebhookEndpointSecretRotated"
}
func (v *visited) WebhookEndpointDeleted(*events.WebhookEndpointDeleted) {
	v.method = "WebhookEndpointDeleted"
}
func (v *visited) Suppression(e events.SuppressionEvent) { e.AcceptSuppression(v) }
func (v *visited) RecipientSuppressed(*events.RecipientSuppressed) {
	v.method = "RecipientSuppressed"
}
func (v *visited) RecipientUnsuppressed(*events.RecipientUnsuppressed) {
	v.method = "RecipientUnsuppressed"
}
func (v *visited) Template(e events.TemplateEvent) { e.AcceptTemplate(v) }
func (v *visited) TemplateVersionCreated(*events.TemplateVersionCreated) {
	v.method = "TemplateVersionCreated"
}
func (v *visited) TemplateArchived(*events.TemplateArchived) { v.method = "TemplateArchived" }
func (v *visited) TemplateRestored(*events.TemplateRestored) { v.method = "TemplateRestored" }

// TestCatalogueKnowsEveryEvent holds the catalogue to the visitors: every type Visitor (for the
// notifications' events), EndpointVisitor (for the endpoints'), SuppressionVisitor (for the
// suppressions') or TemplateVisitor (for stored templates') has a method for is an Event
// named as its method, listed in Types once, decoded by Decode into its own type, and dispatched
// by Accept to its own method. A new event type with its visitor method but not in the
// catalogue fails here.
func TestCatalogueKnowsEveryEvent(t *testing.T) {
	methods := 0
	for _, family := range []struct {
		visitor                         reflect.Type
		endpoint, suppression, template bool
	}{
		{reflect.TypeFor[events.Visitor](), false, false, false},
		{reflect.TypeFor[events.EndpointVisitor](), true, false, false},
		{reflect.TypeFor[events.SuppressionVisitor](), false, true, false},
		{reflect.TypeFor[events.TemplateVisitor](), false, false, true},
	} {
		for i := range family.visitor.NumMethod() {
			m := family.visitor.Method(i)
			if m.Name == "WebhookEndpoint" || m.Name == "Suppression" || m.Name == "Template" {
				continue // the doors to EndpointVisitor, SuppressionVisitor and TemplateVisitor
			}
			methods++
			if m.Type.NumIn() != 1 || m.Type.In(0).Kind() != reflect.Pointer {
				t.Errorf("%s.%s takes %s, want one pointer to an event", family.visitor, m.Name, m.Type)
				continue
			}
			e, ok := reflect.New(m.Type.In(0).Elem()).Interface().(events.Event)
			if !ok {
				t.Errorf("%s.%s takes %s, which is not an Event", family.visitor, m.Name, m.Type.In(0))
				continue
			}
			if _, isEndpoint := e.(events.EndpointEvent); isEndpoint != family.endpoint {
				t.Errorf("%T: EndpointEvent is %v, want %v", e, isEndpoint, family.endpoint)
			}
			if _, isSuppression := e.(events.SuppressionEvent); isSuppression != family.suppression {
				t.Errorf("%T: SuppressionEvent is %v, want %v", e, isSuppression, family.suppression)
			}
			if _, isTemplate := e.(events.TemplateEvent); isTemplate != family.template {
				t.Errorf("%T: TemplateEvent is %v, want %v", e, isTemplate, family.template)
			}
			if got := events.IsNotificationType(e.EventType()); got == (family.endpoint || family.suppression || family.template) {
				t.Errorf("IsNotificationType(%s) = %v", e.EventType(), got)
			}
			if e.EventType() != m.Name {
				t.Errorf("%T is stored as %q, but its visitor method is %s", e, e.EventType(), m.Name)
			}
			if n := slices.Index(events.Types, e.EventType()); n < 0 || slices.Index(events.Types[n+1:], e.EventType()) >= 0 {
				t.Errorf("Types = %v, want %q in it once", events.Types, e.EventType())
			}
			var v visited
			e.Accept(&v)
			if v.method != m.Name {
				t.Errorf("%T.Accept called %s, want %s", e, v.method, m.Name)
			}
		}
	}
	if methods != len(events.Types) {
		t.Errorf("the visitors have %d event methods, Types lists %d event types: %v", methods, len(events.Types), events.Types)
	}
	for _, typ := range events.NotificationTypes {
		if !events.IsNotificationType(typ) {
			t.Errorf("NotificationTypes lists %s, which is not a notification's", typ)
		}
	}
}

// TestNotificationOnly keeps the endpoints' events out of what notification read models fold.
func TestNotificationOnly(t *testing.T) {
	recs := []events.Recorded{
		{Type: events.TypeNotificationQueued, Position: 1},
		{Type: events.TypeWebhookEndpointCreated, Position: 2},
		{Type: events.TypeNotificationSent, Position: 3},
		{Type: events.TypeWebhookEndpointDeleted, Position: 4},
		{Type: events.TypeRecipientSuppressed, Position: 5},
		{Type: events.TypeTemplateVersionCreated, Position: 6},
	}
	var got []int64
	for _, r := range events.NotificationOnly(recs) {
		got = append(got, r.Position)
	}
	if !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("NotificationOnly kept positions %v, want [1 3]", got)
	}
	if all := recs[:1]; &events.NotificationOnly(all)[0] != &all[0] {
		t.Error("NotificationOnly copied a batch that had nothing to leave out")
	}
}

// everyEvent is one event of each type, with every field set.
func everyEvent() []events.Event {
	return []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Subject: "Hi {{.n}}",
			Content: "Hello {{.n}}", Variables: map[string]any{"n": "Ada"}, RenderedSubject: "Hi Ada", Body: "Hello Ada",
			HTML: "<p>Hello {{.n}}</p>", RenderedHTML: "<p>Hello Ada</p>",
			APIKey: &events.APIKeyRef{ID: "k1", Name: "shop"}, Template: &events.TemplateRef{Name: "welcome", Version: 3},
			Attachments: []events.AttachmentRef{{Filename: "a.pdf", ContentType: "application/pdf", Size: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}},
			SendAt:      ptr(time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC))},
		&events.NotificationProcessing{Attempt: 2, Worker: "host/1"},
		&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"},
		&events.NotificationFailed{Attempt: 3, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError},
		&events.NotificationRequeued{Actor: "ops", Reason: "mailbox fixed", Attempts: 3},
		&events.NotificationDiscarded{Actor: "ops", Reason: "address gone"},
		&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusProcessing},
		&events.NotificationDelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "delivered"},
		&events.NotificationUndelivered{Provider: "http-sms", ProviderMessageID: "SM1", ProviderStatus: "undelivered", ErrorCode: "30003", Error: "Unreachable destination handset"},
		&events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 user unknown",
			ReportingMTA: "mx.example.com", Recipient: "ada@example.com", ReportID: "r1"},
		&events.NotificationComplained{FeedbackType: "abuse", ReportingMTA: "fbl.example.net", UserAgent: "FBL/1.0", ReportID: "r2"},
		&events.NotificationCancelled{Actor: "apikey:shop", Reason: "order withdrawn"},
		&events.NotificationReleased{SendAt: time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)},
		&events.WebhookEndpointCreated{URL: "https://hooks.example.com/herald", Description: "shop",
			EventTypes: []string{events.TypeNotificationSent, events.TypeNotificationFailed}},
		&events.WebhookEndpointUpdated{URL: ptr("https://hooks.example.com/v2"), Description: ptr(""),
			EventTypes: ptr([]string{events.TypeNotificationSent})},
		&events.WebhookEndpointDisabled{Cause: events.DisabledFailing, Reason: "no success for 120h0m0s",
			FailingSince: ptr(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))},
		&events.WebhookEndpointEnabled{},
		&events.WebhookEndpointSecretRotated{PreviousValidUntil: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)},
		&events.WebhookEndpointDeleted{},
		&events.RecipientSuppressed{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Cause: events.SuppressedHardBounce,
			Reason: "5.1.1 user unknown", NotificationID: "0193a4f2-7c1e-7000-8000-000000000001",
			ExpiresAt: ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))},
		&events.RecipientUnsuppressed{Channel: herald.ChannelSMS, Recipient: "+14155550123", Reason: "START from the recipient"},
		&events.TemplateVersionCreated{Name: "welcome", Version: 2, Channel: herald.ChannelEmail, Subject: "Welcome, {{.name}}",
			Content: "Hello {{.name}}, you are on {{.plan}}.", HTML: "<p>Hello {{.name}}</p>",
			Variables:   []events.TemplateVariable{{Name: "name"}, {Name: "plan", Default: ptr("free")}},
			Description: "sent on sign-up"},
		&events.TemplateArchived{Name: "welcome", Reason: "replaced by onboarding"},
		&events.TemplateRestored{Name: "welcome", Reason: "onboarding withdrawn"},
	}
}

func ptr[T any](v T) *T { return &v }

// TestDecodeRoundTrips checks that every registered type comes back from its JSON as it went in.
func TestDecodeRoundTrips(t *testing.T) {
	evs := everyEvent()
	var types []string
	for _, e := range evs {
		types = append(types, e.EventType())
	}
	if !slices.Equal(types, events.Types) {
		t.Fatalf("everyEvent has %v, want one of each of %v", types, events.Types)
	}
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := events.Decode(e.EventType(), data)
		if err != nil {
			t.Fatalf("Decode(%s, %s): %v", e.EventType(), data, err)
		}
		if diff := cmp.Diff(e, got); diff != "" {
			t.Errorf("%s after a round trip (-sent +decoded):\n%s", e.EventType(), diff)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tt := range []struct{ typ, data string }{
		{"NotificationExploded", `{}`},
		{"notificationqueued", `{}`},
		{events.TypeNotificationSent, `{"attempt": "two"}`},
		{events.TypeNotificationQueued, `[`},
	} {
		if e, err := events.Decode(tt.typ, []byte(tt.data)); err == nil {
			t.Errorf("Decode(%q, %s) = %#v, want an error", tt.typ, tt.data, e)
		}
	}
}

// TestQueuedWithoutHTML: a NotificationQueued written before emails had an HTML part still
// decodes and folds, to a notification without HTML, and one without HTML is written without
// the html fields.
func TestQueuedWithoutHTML(t *testing.T) {
	old := `{"channel": "email", "recipient": "ada@example.com", "subject": "Hi", "content": "Hello {{.n}}",
		"variables": {"n": "Ada"}, "rendered_subject": "Hi", "body": "Hello Ada"}`
	e, err := events.Decode(events.TypeNotificationQueued, []byte(old))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	n := events.Evolve(herald.Notification{}, events.Recorded{StreamID: "s", Version: 1, Position: 7, Time: at}, e)
	want := herald.Notification{ID: "s", Channel: herald.ChannelEmail, Recipient: "ada@example.com", Subject: "Hi",
		Body: "Hello Ada", Priority: herald.PriorityNormal, Status: herald.StatusPending, Version: 1, Position: 7, CreatedAt: at, UpdatedAt: at}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("fold of an event without HTML (-want +got):\n%s", diff)
	}

	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"html", "rendered_html"} {
		if _, ok := fields[name]; ok {
			t.Errorf("%s is written as %s, want no %q", e.EventType(), data, name)
		}
	}
}
