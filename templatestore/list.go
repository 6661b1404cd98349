package templatestore

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
)

// Page sizes of List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Which templates List returns by their archiving.
const (
	// ArchivedExclude (the default) lists the templates in use.
	ArchivedExclude = "exclude"
	// ArchivedOnly lists the archived ones.
	ArchivedOnly = "only"
	// ArchivedInclude lists both.
	ArchivedInclude = "include"
)

// Filter selects the templates List returns.
type Filter struct {
	// Channel, when set, keeps the templates of that channel.
	Channel herald.Channel
	// Archived is ArchivedExclude (or empty), ArchivedOnly or ArchivedInclude.
	Archived string
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is the next page's cursor a previous List returned; empty for the first page.
	Cursor string
}

// List returns a page of templates, by name, each with its latest version, and the cursor of
// the next page ("" after the last). EINVALID, naming the field, for a bad filter.
func (s *Store) List(ctx context.Context, f Filter) ([]Template, string, error) {
	problems := map[string]string{}
	switch f.Channel {
	case "", herald.ChannelEmail, herald.ChannelSMS:
	default:
		problems["channel"] = fmt.Sprintf("unknown channel %q: want email or sms", f.Channel)
	}
	switch f.Archived {
	case "":
		f.Archived = ArchivedExclude
	case ArchivedExclude, ArchivedOnly, ArchivedInclude:
	default:
		problems["archived"] = fmt.Sprintf("unknown value %q: want %s, %s or %s", f.Archived, ArchivedExclude, ArchivedOnly, ArchivedInclude)
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		problems["limit"] = fmt.Sprintf("must be between 1 and %d", MaxLimit)
	case f.Limit == 0:
		f.Limit = DefaultLimit
	}
	after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
	if err != nil || (f.Cursor != "" && NameProblem(string(after)) != "") {
		problems["cursor"] = "is not a cursor this list returned"
	}
	if len(problems) > 0 {
		return nil, "", invalid("invalid filter", problems)
	}
	rows, err := s.db.Query(ctx, `SELECT `+templateColumns+` FROM `+templateFrom+`
		WHERE ($1 = '' OR t.channel = $1)
		  AND ($2 = 'include' OR (t.archived_at IS NOT NULL) = ($2 = 'only'))
		  AND t.name > $3
		ORDER BY t.name LIMIT $4`,
		string(f.Channel), f.Archived, string(after), f.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Template, error) { return scanTemplate(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list templates: %w", err)
	}
	if len(out) <= f.Limit {
		return out, "", nil
	}
	out = out[:f.Limit]
	return out, base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].Name())), nil
}
