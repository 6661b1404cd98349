package openapitest_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/events"
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/wire"
)

// schema is what this test reads of a schema of the document.
type schema struct {
	Type       any                        `json:"type"`
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
}

// The document's schemas name exactly the fields each wire shape marshals: the same names, a
// field required unless wire leaves it out when empty, and a pointer that wire prints as null
// allowed to be null. Requests (marked) are checked for their names only: which fields a
// request needs is the server's rule, not the struct's.
func TestSchemasAreTheWireShapes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(heraldhttp.OpenAPIDocument(), &doc); err != nil {
		t.Fatal(err)
	}
	shapes := []struct {
		schema  string
		v       any
		request bool
	}{
		{"Error", wire.Error{}, false}, {"ErrorDetail", wire.ErrorDetail{}, false},
		{"Links", wire.Links{}, false}, {"Notification", wire.Notification{}, false},
		{"NotificationList", wire.NotificationList{}, false}, {"HistoryEntry", wire.HistoryEntry{}, false},
		{"History", wire.History{}, false}, {"Event", wire.Event{}, false}, {"EventMetadata", events.Metadata{}, false},
		{"Stream", wire.Stream{}, false}, {"Parked", wire.Parked{}, false}, {"ParkedPage", wire.ParkedPage{}, false},
		{"OperatorResult", wire.Result{}, false}, {"ProjectionStatus", wire.ProjectionStatus{}, false},
		{"RebuildReport", wire.RebuildReport{}, false}, {"JobProgress", wire.JobProgress{}, false},
		{"JobLinks", wire.JobLinks{}, false}, {"RebuildJob", wire.RebuildJob{}, false},
		{"Projections", wire.Projections{}, false}, {"SignedCheckpoint", wire.SignedCheckpoint{}, false},
		{"ProvenEvent", wire.ProvenEvent{}, false}, {"ProofBundle", wire.ProofBundle{}, false},
		{"NotificationProof", wire.NotificationProof{}, false}, {"WebhookEndpoint", wire.WebhookEndpoint{}, false},
		{"WebhookEndpointCreated", wire.WebhookEndpointCreated{}, false},
		{"WebhookEndpointLinks", wire.WebhookEndpointLinks{}, false}, {"WebhookEndpointList", wire.WebhookEndpointList{}, false},
		{"WebhookAttempt", wire.WebhookAttempt{}, false}, {"WebhookAttempts", wire.WebhookAttempts{}, false},
		{"WebhookReplayRequest", wire.WebhookReplayRequest{}, false}, {"WebhookReplayProgress", wire.WebhookReplayProgress{}, false},
		{"WebhookReplayReport", wire.WebhookReplayReport{}, false}, {"WebhookReplayJob", wire.WebhookReplayJob{}, false},
		{"Suppression", wire.Suppression{}, false}, {"SuppressionLinks", wire.SuppressionLinks{}, false},
		{"SuppressionList", wire.SuppressionList{}, false}, {"SuppressionRequest", wire.SuppressionRequest{}, true},
		{"TemplateVariable", wire.TemplateVariable{}, false}, {"Template", wire.Template{}, false},
		{"TemplateLinks", wire.TemplateLinks{}, false}, {"TemplateVersion", wire.TemplateVersion{}, false},
		{"TemplateVersionLinks", wire.TemplateVersionLinks{}, false}, {"TemplateList", wire.TemplateList{}, false},
		{"TemplateVersionList", wire.TemplateVersionList{}, false}, {"TemplateRequest", wire.TemplateRequest{}, true},
		{"Health", wire.Health{}, false}, {"Readiness", wire.Readiness{}, false},
	}
	for _, sh := range shapes {
		t.Run(sh.schema, func(t *testing.T) {
			s, ok := doc.Components.Schemas[sh.schema]
			if !ok {
				t.Fatalf("the document has no schema %s", sh.schema)
			}
			var names, required, nullable []string
			walk(reflect.TypeOf(sh.v), func(name string, omitempty bool, f reflect.StructField) {
				names = append(names, name)
				if !omitempty {
					required = append(required, name)
					if f.Type.Kind() == reflect.Pointer {
						nullable = append(nullable, name)
					}
				}
			})
			var props []string
			for name := range s.Properties {
				props = append(props, name)
			}
			slices.Sort(names)
			slices.Sort(props)
			if diff := cmp.Diff(names, props); diff != "" {
				t.Errorf("properties (-wire +document):\n%s", diff)
			}
			if sh.request {
				return
			}
			req := slices.Clone(s.Required)
			slices.Sort(required)
			slices.Sort(req)
			if diff := cmp.Diff(required, req); diff != "" {
				t.Errorf("required: the fields wire always marshals (-wire +document):\n%s", diff)
			}
			for _, name := range nullable {
				var p struct {
					Type any `json:"type"`
				}
				_ = json.Unmarshal(s.Properties[name], &p)
				if types, _ := p.Type.([]any); !slices.Contains(types, any("null")) {
					t.Errorf("%s: wire marshals null when unset, but its type is %v", name, p.Type)
				}
			}
		})
	}
}

// walk calls f with each JSON field of struct type typ, embedded structs' fields included.
func walk(typ reflect.Type, f func(name string, omitempty bool, field reflect.StructField)) {
	for i := range typ.NumField() {
		field := typ.Field(i)
		tag := field.Tag.Get("json")
		if field.Anonymous && tag == "" {
			walk(field.Type, f)
			continue
		}
		if !field.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = field.Name
		}
		f(name, strings.Contains(opts, "omitempty"), field)
	}
}
