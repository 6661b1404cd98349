package bounces_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/herald-notify/herald/bounces"
)

// FuzzParse feeds the parser what anyone on the internet may mail the listener, starting from
// the fixtures: it must never panic, and what it accepts must be a report it can interpret.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := bounces.Parse(raw)
		if err != nil {
			return
		}
		switch r.Type {
		case bounces.TypeDeliveryStatus:
			if len(r.Recipients) == 0 {
				t.Fatalf("a delivery status without recipients was accepted: %+v", r)
			}
		case bounces.TypeFeedbackReport:
			if r.Feedback.Type == "" {
				t.Fatalf("a feedback report without a type was accepted: %+v", r)
			}
		default:
			t.Fatalf("accepted a report of type %q", r.Type)
		}
		ev, outcome, _ := bounces.Interpret(r, "1")
		if (ev == nil) != (outcome == bounces.OutcomeIgnored) {
			t.Fatalf("Interpret = %v, %q: an event exactly when the outcome is not ignored", ev, outcome)
		}
	})
}
