package events_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

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

// TestCatalogueKnowsEveryEvent holds the catalogue to Visitor: every type Visitor has a method
// for is an Event named as its method, listed in Types once, decoded by Decode into its own type,
// and dispatched by Accept to its own method. A new event type with its Visitor method but not
// in the catalogue fails here.
func TestCatalogueKnowsEveryEvent(t *testing.T) {
	visitor := reflect.TypeFor[events.Visitor]()
	if visitor.NumMethod() != len(events.Types) {
		t.Errorf("Visitor has %d methods, Types lists %d event types: %v", visitor.NumMethod(), len(events.Types), events.Types)
	}
	for i := range visitor.NumMethod() {
		m := visitor.Method(i)
		if m.Type.NumIn() != 1 || m.Type.In(0).Kind() != reflect.Pointer {
			t.Errorf("Visitor.%s takes %s, want one pointer to an event", m.Name, m.Type)
			continue
		}
		e, ok := reflect.New(m.Type.In(0).Elem()).Interface().(events.Event)
		if !ok {
			t.Errorf("Visitor.%s takes %s, which is not an Event", m.Name, m.Type.In(0))
			continue
		}
		if e.EventType() != m.Name {
			t.Errorf("%T is stored as %q, but its Visitor method is %s", e, e.EventType(), m.Name)
		}
		if n := slices.Index(events.Types, e.EventType()); n < 0 || slices.Index(events.Types[n+1:], e.EventType()) >= 0 {
			t.Errorf("Types = %v, want %q in it once", events.Types, e.EventType())
		}
		var v visited
		e.Accept(&v)
		if v.method != m.Name {
			t.Errorf("%T.Accept called Visitor.%s, want %s", e, v.method, m.Name)
		}
	}
}

// everyEvent is one event of each type, with every field set.
func everyEvent() []events.Event {
	return []events.Event{
		&events.NotificationQueued{Channel: herald.ChannelEmail, Recipient: "ada@example.com", Subject: "Hi {{.n}}",
			Content: "Hello {{.n}}", Variables: map[string]any{"n": "Ada"}, RenderedSubject: "Hi Ada", Body: "Hello Ada",
			APIKey: &events.APIKeyRef{ID: "k1", Name: "shop"}},
		&events.NotificationProcessing{Attempt: 2, Worker: "host/1"},
		&events.NotificationSent{Attempt: 2, Provider: "smtp", ProviderMessageID: "<m@example.com>"},
		&events.DeliveryAttemptFailed{Attempt: 1, Provider: "smtp", Error: "421 try later"},
		&events.NotificationFailed{Attempt: 3, Provider: "smtp", Error: "550 no such user", Reason: events.ReasonPermanentError},
		&events.NotificationRequeued{Actor: "ops", Reason: "mailbox fixed", Attempts: 3},
		&events.NotificationDiscarded{Actor: "ops", Reason: "address gone"},
		&events.NotificationRecovered{Actor: "system:reconciler", Reason: "stalled", Status: herald.StatusProcessing},
	}
}

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
