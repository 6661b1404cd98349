package events

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// LoadStreams returns the events of each of streams, in version order, in one query, to be
// folded: a NotificationQueued comes without its templates (foldColumns), which no fold reads
// and which make an HTML email's event many times the size of the rest. A stream with no
// events is not in the map.
func (l *Log) LoadStreams(ctx context.Context, streams []string) (map[string][]Recorded, error) {
	rows, err := l.db.Query(ctx, `SELECT `+foldColumns+` FROM event_log
		WHERE stream_id = ANY($1::uuid[]) ORDER BY stream_id, stream_version`, streams)
	if err != nil {
		return nil, fmt.Errorf("load %d streams: %w", len(streams), err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recorded, error) { return scanRecorded(row) })
	if err != nil {
		return nil, fmt.Errorf("load %d streams: %w", len(streams), err)
	}
	out := make(map[string][]Recorded, len(streams))
	for _, r := range recs {
		out[r.StreamID] = append(out[r.StreamID], r)
	}
	return out, nil
}
