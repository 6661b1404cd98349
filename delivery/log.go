package delivery

import (
	"context"
	"fmt"
	"log/slog"
)

// Log is the provider for local development: it writes what it would send to a logger and
// reports success, so the whole pipeline runs without a mail relay or an SMS account.
type Log struct {
	logger *slog.Logger
}

var _ Provider = (*Log)(nil)

// NewLog returns a provider that logs to logger; nil means slog.Default().
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{logger: logger}
}

// Name returns "log".
func (l *Log) Name() string { return "log" }

// Send logs m at Info and returns "log-" + m.NotificationID. It fails only when ctx has already
// ended, like a provider that never got to send.
func (l *Log) Send(ctx context.Context, m Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("log send %s: %w", m.NotificationID, err)
	}
	id := "log-" + m.NotificationID
	attrs := []slog.Attr{
		slog.String("notification_id", m.NotificationID),
		slog.Int("attempt", m.Attempt),
		slog.String("channel", string(m.Channel)),
		slog.String("recipient", m.Recipient),
		slog.String("subject", m.Subject),
		slog.String("body", m.Body),
	}
	if m.HTML != "" {
		attrs = append(attrs, slog.String("html", m.HTML))
	}
	attrs = append(attrs, slog.String("provider_message_id", id))
	l.logger.LogAttrs(ctx, slog.LevelInfo, "notification logged instead of sent", attrs...)
	return id, nil
}
