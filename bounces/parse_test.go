package bounces_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald/bounces"
	"github.com/herald-notify/herald/events"
)

// fixtureID is the notification id the fixtures in testdata name; tests that need a real
// notification put its id in its place.
const fixtureID = "0190d5a2-7c3e-7b4a-9f10-3c5e8a1b2c4d"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestParseFixtures reads each fixture, written the way a real mail server formats its reports,
// and checks what it says and what it means.
func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file        string
		want        bounces.Report
		wantEvent   events.Event
		wantOutcome string
	}{
		{
			file: "postfix_hard.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "20261203130211.4Xk2Lm0Qz9z9sWc@mx1.example.net",
				ReportingMTA: "mx1.example.net",
				Recipients: []bounces.RecipientStatus{{Recipient: "bob@example.net", Action: "failed", Status: "5.1.1",
					Diagnostic: "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table"}},
				Original: bounces.Original{MessageID: fixtureID + "@example.com", NotificationID: fixtureID},
			},
			wantEvent: &events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1",
				Diagnostic:   "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table",
				ReportingMTA: "mx1.example.net", Recipient: "bob@example.net", ReportID: "7"},
			wantOutcome: bounces.OutcomeHardBounce,
		},
		{
			file: "exim_hard.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "E1tPq3x-0004Ab-2K@relay.example.org",
				ReportingMTA: "relay.example.org",
				Recipients: []bounces.RecipientStatus{{Recipient: "carol@example.org", Action: "failed", Status: "5.0.0",
					Diagnostic: "550 5.1.1 <carol@example.org>: mailbox unavailable"}},
				Original: bounces.Original{MessageID: fixtureID + "@example.com", NotificationID: fixtureID},
			},
			wantEvent: &events.NotificationBounced{Kind: events.BounceHard, Status: "5.0.0",
				Diagnostic: "550 5.1.1 <carol@example.org>: mailbox unavailable", ReportingMTA: "relay.example.org",
				Recipient: "carol@example.org", ReportID: "7"},
			wantOutcome: bounces.OutcomeHardBounce,
		},
		{
			file: "gmail_hard.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "6750f4a1.050a0220.1f3c2b.9d41.GMR@mx.google.com",
				ReportingMTA: "googlemail.com",
				Recipients: []bounces.RecipientStatus{{Recipient: "dave@example.com", Action: "failed", Status: "5.1.1",
					Diagnostic: "550-5.1.1 The email account that you tried to reach does not exist."}},
				Original: bounces.Original{MessageID: fixtureID + "@example.com", NotificationID: fixtureID},
			},
			wantEvent: &events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.1",
				Diagnostic: "550-5.1.1 The email account that you tried to reach does not exist.", ReportingMTA: "googlemail.com",
				Recipient: "dave@example.com", ReportID: "7"},
			wantOutcome: bounces.OutcomeHardBounce,
		},
		{
			file: "microsoft_hard.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "7b0c3e55-1a2d-4f60-9b8e-2c4d6e8f0a12@AM0PR01MB6401.eurprd01.prod.exchangelabs.com",
				ReportingMTA: "AM0PR01MB6401.eurprd01.prod.exchangelabs.com",
				Recipients: []bounces.RecipientStatus{{Recipient: "erin@contoso.com", Action: "failed", Status: "5.1.10",
					Diagnostic: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"}},
				Original: bounces.Original{MessageID: fixtureID + "@example.com"},
			},
			wantEvent: &events.NotificationBounced{Kind: events.BounceHard, Status: "5.1.10",
				Diagnostic:   "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
				ReportingMTA: "AM0PR01MB6401.eurprd01.prod.exchangelabs.com", Recipient: "erin@contoso.com", ReportID: "7"},
			wantOutcome: bounces.OutcomeHardBounce,
		},
		{
			file: "postfix_delayed.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "20261203170540.4XkB9t1Hc3z9sWd@mx1.example.net",
				ReportingMTA: "mx1.example.net",
				Recipients: []bounces.RecipientStatus{{Recipient: "grace@example.net", Action: "delayed", Status: "4.4.1",
					Diagnostic: "connect to mail.example.net[192.0.2.10]:25: Connection timed out"}},
				Original: bounces.Original{MessageID: fixtureID + "@example.com", NotificationID: fixtureID},
			},
			wantEvent: &events.NotificationBounced{Kind: events.BounceSoft, Status: "4.4.1",
				Diagnostic:   "connect to mail.example.net[192.0.2.10]:25: Connection timed out",
				ReportingMTA: "mx1.example.net", Recipient: "grace@example.net", ReportID: "7"},
			wantOutcome: bounces.OutcomeSoftBounce,
		},
		{
			file: "postfix_delivered.eml",
			want: bounces.Report{
				Type: bounces.TypeDeliveryStatus, MessageID: "20261203130211.4Xk2Lm9Rz1z9sWe@mx1.example.net",
				ReportingMTA: "mx1.example.net",
				Recipients: []bounces.RecipientStatus{{Recipient: "bob@example.net", Action: "relayed", Status: "2.0.0",
					Diagnostic: "250 2.0.0 Ok: queued as 4Xk2LnA0y1z1"}},
			},
			wantOutcome: bounces.OutcomeIgnored,
		},
		{
			file: "arf_yahoo.eml",
			want: bounces.Report{
				Type: bounces.TypeFeedbackReport, MessageID: "20261204091233.7f3a.fbl@arf.mail.yahoo.com",
				Feedback: bounces.Feedback{Type: "abuse", UserAgent: "Yahoo!-Mail-Feedback/2.0", OriginalRcptTo: "frank@yahoo.com"},
				Original: bounces.Original{MessageID: fixtureID + "@example.com", NotificationID: fixtureID},
			},
			wantEvent:   &events.NotificationComplained{FeedbackType: "abuse", UserAgent: "Yahoo!-Mail-Feedback/2.0", ReportID: "7"},
			wantOutcome: bounces.OutcomeComplaint,
		},
		{
			file: "arf_microsoft_jmrp.eml",
			want: bounces.Report{
				Type: bounces.TypeFeedbackReport, MessageID: "JMRP.5f2a9c71-44d1-4e0b-b3a8-91c2d7e6f004@hotmail.com",
				ReportingMTA: "198.51.100.4",
				Feedback:     bounces.Feedback{Type: "abuse", UserAgent: "Hotmail FBL", SourceIP: "198.51.100.4"},
				Original:     bounces.Original{MessageID: fixtureID + "@example.com"},
			},
			wantEvent: &events.NotificationComplained{FeedbackType: "abuse", ReportingMTA: "198.51.100.4",
				UserAgent: "Hotmail FBL", ReportID: "7"},
			wantOutcome: bounces.OutcomeComplaint,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := bounces.Parse(fixture(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
			ev, outcome, _ := bounces.Interpret(got, "7")
			if outcome != tt.wantOutcome {
				t.Errorf("Interpret outcome = %q, want %q", outcome, tt.wantOutcome)
			}
			if diff := cmp.Diff(tt.wantEvent, ev); diff != "" {
				t.Errorf("Interpret event mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseRefusesWhatIsNoReport: mail that is no report fails with ErrNotReport.
func TestParseRefusesWhatIsNoReport(t *testing.T) {
	for name, raw := range map[string][]byte{
		"autoreply":        fixture(t, "autoreply.eml"),
		"not mail":         []byte("hello"),
		"report of a kind": []byte("Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"),
		"no status part":   []byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := bounces.Parse(raw); !errors.Is(err, bounces.ErrNotReport) {
				t.Errorf("Parse error = %v, want ErrNotReport", err)
			}
		})
	}
}

// TestInterpretWorstRecipient: of several recipients, a failure outweighs a delay, and a 4.x.x
// failure is soft.
func TestInterpretWorstRecipient(t *testing.T) {
	tests := []struct {
		name       string
		recipients []bounces.RecipientStatus
		wantKind   string
		wantRcpt   string
	}{
		{"failure after a delay", []bounces.RecipientStatus{{Recipient: "a@x", Action: "delayed", Status: "4.4.1"}, {Recipient: "b@x", Action: "failed", Status: "5.2.2"}}, events.BounceHard, "b@x"},
		{"temporary failure", []bounces.RecipientStatus{{Recipient: "a@x", Action: "failed", Status: "4.2.2"}}, events.BounceSoft, "a@x"},
		{"failure without status", []bounces.RecipientStatus{{Recipient: "a@x", Action: "failed"}}, events.BounceHard, "a@x"},
		{"delivered and delayed", []bounces.RecipientStatus{{Recipient: "a@x", Action: "delivered", Status: "2.0.0"}, {Recipient: "b@x", Action: "delayed"}}, events.BounceSoft, "b@x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, _, _ := bounces.Interpret(bounces.Report{Type: bounces.TypeDeliveryStatus, Recipients: tt.recipients}, "1")
			b, ok := ev.(*events.NotificationBounced)
			if !ok {
				t.Fatalf("Interpret = %#v, want a NotificationBounced", ev)
			}
			if b.Kind != tt.wantKind || b.Recipient != tt.wantRcpt {
				t.Errorf("bounce = %s for %s, want %s for %s", b.Kind, b.Recipient, tt.wantKind, tt.wantRcpt)
			}
		})
	}
}

// TestParseTruncatedReport: a report whose returned message was cut short, closing boundary and
// all, still says what its status part says.
func TestParseTruncatedReport(t *testing.T) {
	raw := fixture(t, "exim_hard.eml")
	cut := raw[:bytes.Index(raw, []byte("Hello Carol"))]
	got, err := bounces.Parse(cut)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(got.Recipients) != 1 || got.Recipients[0].Status != "5.0.0" || got.Original.NotificationID != fixtureID {
		t.Errorf("Parse = %+v, want the failure of carol and the returned headers", got)
	}
}
