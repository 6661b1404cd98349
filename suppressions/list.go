package suppressions

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Page sizes of List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Filter selects the entries List returns.
type Filter struct {
	// Channel and Cause, when set, keep the entries of that channel, of that cause.
	Channel herald.Channel
	Cause   string
	// All includes the entries that no longer hold (removed or expired).
	All bool
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is the next page's cursor a previous List returned; empty for the first page.
	Cursor string
}

// List returns a page of the list, by channel and recipient, and the cursor of the next page
// ("" after the last). EINVALID, naming the field, for a bad filter.
func (s *Store) List(ctx context.Context, f Filter) ([]Suppression, string, error) {
	if f.Channel != "" && !slices.Contains(herald.Channels, f.Channel) {
		return nil, "", herald.Invalid(fmt.Sprintf("unknown channel %q", f.Channel),
			map[string]string{"channel": fmt.Sprintf("unknown channel %q: want email or sms", f.Channel)})
	}
	if f.Cause != "" && !slices.Contains(events.SuppressionCauses, f.Cause) {
		return nil, "", herald.Invalid(fmt.Sprintf("unknown cause %q", f.Cause),
			map[string]string{"cause": fmt.Sprintf("unknown cause %q: want one of %s", f.Cause, strings.Join(events.SuppressionCauses, ", "))})
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		return nil, "", herald.Invalid(fmt.Sprintf("limit %d is out of range", f.Limit),
			map[string]string{"limit": fmt.Sprintf("must be between 1 and %d", MaxLimit)})
	case f.Limit == 0:
		f.Limit = DefaultLimit
	}
	afterChannel, afterRecipient, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM suppressions
		WHERE ($1 = '' OR channel = $1) AND ($2 = '' OR cause = $2)
		  AND ($3 OR (removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())))
		  AND (channel, recipient) > ($4, $5)
		ORDER BY channel, recipient LIMIT $6`,
		string(f.Channel), f.Cause, f.All, afterChannel, afterRecipient, f.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Suppression, error) { return scan(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	if len(out) <= f.Limit {
		return out, "", nil
	}
	out = out[:f.Limit]
	last := out[len(out)-1]
	return out, encodeCursor(last.Channel, last.Recipient), nil
}

func encodeCursor(channel herald.Channel, recipient string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(channel) + "\x00" + recipient))
}

func decodeCursor(cursor string) (string, string, error) {
	if cursor == "" {
		return "", "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	channel, recipient, ok := strings.Cut(string(raw), "\x00")
	if err != nil || !ok {
		return "", "", herald.Invalid("invalid cursor", map[string]string{"cursor": "is not a cursor this list returned"})
	}
	return channel, recipient, nil
}
