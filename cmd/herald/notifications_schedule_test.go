package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
)

// notifications show says when a scheduled notification is to be sent, in its table and in its
// JSON (the API's send_at).
func TestNotificationsShowScheduled(t *testing.T) {
	db := heraldtest.NewDatabase(t)
	id := uuid.NewString()
	at := time.Date(2030, 12, 24, 18, 0, 0, 0, time.UTC)
	if _, err := events.NewLog(db.Pool).Append(t.Context(), id, 0, events.Metadata{Actor: "test"},
		&events.NotificationQueued{Channel: herald.ChannelSMS, Recipient: "+14155550123", Content: "hi", Body: "hi", SendAt: &at}); err != nil {
		t.Fatal(err)
	}
	table := squeezeSpaces(mustRunHerald(t, "notifications", "show", id, "--database-url", db.URL))
	for _, want := range []string{"status scheduled", "send at " + logTime(at), "NotificationQueued scheduled"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	var shown struct {
		Notification struct {
			Status string    `json:"status"`
			SendAt time.Time `json:"send_at"`
		} `json:"notification"`
	}
	out := mustRunHerald(t, "notifications", "show", id, "-o", "json", "--database-url", db.URL)
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if shown.Notification.Status != "scheduled" || !shown.Notification.SendAt.Equal(at) {
		t.Errorf("-o json: %s with send_at %s, want scheduled for %s", shown.Notification.Status, shown.Notification.SendAt, at)
	}
}
