package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
)

func TestLogSend(t *testing.T) {
	var buf bytes.Buffer
	p := delivery.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))

	id, err := p.Send(context.Background(), delivery.Message{
		NotificationID: "ntf-42",
		Attempt:        2,
		Channel:        herald.ChannelEmail,
		Recipient:      "bob@example.net",
		Subject:        "Your code",
		Body:           "1234",
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if id != "log-ntf-42" {
		t.Errorf("Send id = %q, want %q", id, "log-ntf-42")
	}

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("log output %q is not one JSON record: %v", buf.String(), err)
	}
	delete(got, "time")
	want := map[string]any{
		"level":               "INFO",
		"msg":                 "notification logged instead of sent",
		"notification_id":     "ntf-42",
		"attempt":             float64(2),
		"channel":             "email",
		"recipient":           "bob@example.net",
		"subject":             "Your code",
		"body":                "1234",
		"provider_message_id": "log-ntf-42",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log record mismatch (-want +got):\n%s", diff)
	}
}

func TestLogSendAfterContextEnded(t *testing.T) {
	var buf bytes.Buffer
	p := delivery.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := p.Send(ctx, delivery.Message{NotificationID: "ntf-1", Channel: herald.ChannelSMS, Recipient: "+15550100"})
	if err == nil || delivery.IsPermanent(err) {
		t.Errorf("Send with a cancelled ctx: err = %v, want a transient error", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Send with a cancelled ctx logged %q, want nothing", buf.String())
	}
}

func TestLogName(t *testing.T) {
	if got := delivery.NewLog(slog.New(slog.DiscardHandler)).Name(); got != "log" {
		t.Errorf("Name() = %q, want %q", got, "log")
	}
}
