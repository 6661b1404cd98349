package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/herald-notify/herald"
)

// Sizes of a page of parked messages.
const (
	DefaultParkedPageSize = 50
	MaxParkedPageSize     = 500
)

// ParkedQuery asks for one page of parked messages.
type ParkedQuery struct {
	// Channel keeps only the messages of one channel, when it is set.
	Channel herald.Channel
	// Limit is the most messages the page holds; 0 means DefaultParkedPageSize.
	Limit int
	// Cursor is the Next of the page before; empty for the first page.
	Cursor string
}

// ParkedPage is a page of parked messages in queue order, with their notifications' state.
type ParkedPage struct {
	Parked []Parked
	// Next is the cursor of the page after this one; empty when this one is the last.
	Next string
}

// parkedCursor says where a page ended: the position of its last message in the queue plus one,
// and a digest of the identity of each of its last few messages, oldest first.
type parkedCursor struct {
	Pos      int      `json:"p"`
	Messages []string `json:"m"`
}

// cursorMessages is how many of a page's last messages its cursor names: the next page starts
// after the latest of them still parked, so it starts right even when a few were removed.
const cursorMessages = 8

func (c parkedCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// rank returns where digest d is among c's messages (higher is later), or -1.
func (c parkedCursor) rank(d string) int {
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i] == d {
			return i
		}
	}
	return -1
}

func decodeParkedCursor(s string) (*parkedCursor, error) {
	if s == "" {
		return nil, nil
	}
	invalid := herald.Invalid("the cursor is invalid", map[string]string{"cursor": "is not a cursor this listing gave: start again without one"})
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid
	}
	var c parkedCursor
	if err := json.Unmarshal(b, &c); err != nil || c.Pos < 1 || len(c.Messages) == 0 || len(c.Messages) > cursorMessages {
		return nil, invalid
	}
	return &c, nil
}

// digest names a parked message for a cursor, briefly: a digest of its message id, or, for a
// message without one (not published by Herald), of its body.
func (m ParkedMessage) digest() string {
	var sum [32]byte
	if m.MessageID != "" {
		sum = sha256.Sum256([]byte("id:" + m.MessageID))
	} else {
		sum = sha256.Sum256(append([]byte("body:"), m.Body...))
	}
	return hex.EncodeToString(sum[:8])
}

// ParkedPage returns one page of parked messages, in queue order, with their notifications'
// state. It returns EINVALID for a limit out of range or a cursor it did not give, and the
// queue's EUNAVAILABLE when it cannot look.
//
// AMQP cannot seek or peek, so every page walks the queue from its head (see ParkedQueue.Walk):
// it passes over the messages before the cursor without keeping them and keeps only the page's,
// so memory is bounded by the page size, and time grows with the page's position in the queue.
//
// The cursor names the last few messages of the page before and the position of its last. The
// next page starts after the latest of them still parked, wherever it now is (messages removed
// before it move it forward). Only if all of them were removed does it start at the old
// position, and then as many messages as were removed before that position are passed over.
// Messages parked meanwhile join the end of the queue.
func (o *Operator) ParkedPage(ctx context.Context, q ParkedQuery) (ParkedPage, error) {
	if q.Limit == 0 {
		q.Limit = DefaultParkedPageSize
	}
	if q.Limit < 1 || q.Limit > MaxParkedPageSize {
		return ParkedPage{}, herald.Invalid("the listing is invalid", map[string]string{
			"limit": fmt.Sprintf("must be a whole number from 1 to %d", MaxParkedPageSize)})
	}
	cur, err := decodeParkedCursor(q.Cursor)
	if err != nil {
		return ParkedPage{}, err
	}
	w := pageWalk{limit: q.Limit, channel: q.Channel, cur: cur, found: -1}
	if err := o.queue.Walk(ctx, w.visit); err != nil {
		return ParkedPage{}, fmt.Errorf("list parked: %w", err)
	}
	states, err := o.states(ctx, w.page)
	if err != nil {
		return ParkedPage{}, fmt.Errorf("list parked: %w", err)
	}
	out := ParkedPage{Parked: make([]Parked, 0, len(w.page))}
	for _, m := range w.page {
		out.Parked = append(out.Parked, states[m.NotificationID].parked(m))
	}
	if w.more {
		last := len(w.page) - 1
		c := parkedCursor{Pos: w.at[last] + 1}
		for _, m := range w.page[max(0, len(w.page)-cursorMessages):] {
			c.Messages = append(c.Messages, m.digest())
		}
		out.Next = c.encode()
	}
	return out, nil
}

// WalkParked hands every parked message, of channel only unless it is empty, to fn in queue
// order, size at a time with their notifications' state, in one walk of the queue. It stops at
// fn's first error and returns it.
func (o *Operator) WalkParked(ctx context.Context, channel herald.Channel, size int, fn func([]Parked) error) error {
	size = max(1, size)
	batch := make([]ParkedMessage, 0, size)
	var fnErr error
	flush := func() bool {
		states, err := o.states(ctx, batch)
		if err != nil {
			fnErr = fmt.Errorf("list parked: %w", err)
			return false
		}
		out := make([]Parked, 0, len(batch))
		for _, m := range batch {
			out = append(out, states[m.NotificationID].parked(m))
		}
		batch = batch[:0]
		if err := fn(out); err != nil {
			fnErr = err
			return false
		}
		return true
	}
	err := o.queue.Walk(ctx, func(m ParkedMessage) bool {
		if channel != "" && m.Channel != channel {
			return true
		}
		batch = append(batch, m)
		return len(batch) < size || flush()
	})
	if err != nil {
		return fmt.Errorf("list parked: %w", err)
	}
	if fnErr != nil {
		return fnErr
	}
	if len(batch) > 0 && !flush() {
		return fnErr
	}
	return nil
}

// pageWalk collects one page while the queue is walked.
type pageWalk struct {
	limit   int
	channel herald.Channel
	cur     *parkedCursor

	i     int // position of the next message
	found int // rank of the latest cursor message found, -1 for none
	page  []ParkedMessage
	at    []int // position of each message of page
	more  bool  // a message of the page after this one was seen
}

func (w *pageWalk) visit(m ParkedMessage) bool {
	i := w.i
	w.i++
	if w.cur != nil && i < w.cur.Pos {
		// Before the cursor's position, where every message of the cursor still parked is:
		// the page starts after the latest of them, or at the position if there is none.
		if r := w.cur.rank(m.digest()); r >= 0 && r >= w.found {
			w.found, w.more = r, false
			w.page, w.at = w.page[:0], w.at[:0]
			return true
		}
		if w.found >= 0 && w.keep(m) {
			if len(w.page) == w.limit {
				w.more = true
			} else {
				w.page, w.at = append(w.page, m), append(w.at, i)
			}
		}
		return true
	}
	if !w.keep(m) {
		return true
	}
	if len(w.page) == w.limit {
		w.more = true
		return false
	}
	w.page, w.at = append(w.page, m), append(w.at, i)
	return true
}

func (w *pageWalk) keep(m ParkedMessage) bool { return w.channel == "" || m.Channel == w.channel }
