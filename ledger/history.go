package ledger

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// VerifyHistory checks a stream's history as handed over (herald events export --proof, or a
// notification's proofs): events are the stream's, from version 1 without a gap, each hashing,
// chained to the one before it, to its hash; proofs are of the first of those events, exactly
// as listed, each verified against keys (Proof.Verify). The events a proof covers are thereby in
// the log the signed checkpoint commits to; the others are chained to them, not signed.
func VerifyHistory(stream uuid.UUID, events, proofs []*Proof, keys Keys) error {
	if len(keys) == 0 {
		return errors.New("a history is checked against a public key")
	}
	if len(events) == 0 {
		return &Mismatch{Stream: stream.String(), Field: "events", Reason: "the history has no event"}
	}
	var prev Hash
	for i, e := range events {
		m := &Mismatch{Position: e.Position, Stream: uuid.UUID(e.Event.Stream).String(), Version: e.Event.Version}
		switch {
		case e.Event.Stream != stream:
			m.Field, m.Reason = "stream_id", fmt.Sprintf("the event is of stream %s, not %s", m.Stream, stream)
		case e.Event.Version != int64(i)+1:
			m.Field, m.Reason = "version", fmt.Sprintf("event %d of the stream is version %d, want %d", i+1, e.Event.Version, i+1)
		case i > 0 && e.Prev != prev:
			m.Field, m.Reason = "previous_hash", "it is not the hash of the version before"
		case EventHash(chainedPrev(e), &e.Event) != e.Hash:
			m.Field, m.Reason = "hash", "the event's contents, chained to the previous hash, do not hash to its hash"
		default:
			prev = e.Hash
			continue
		}
		return m
	}
	if len(proofs) > len(events) {
		return &Mismatch{Stream: stream.String(), Field: "proofs", Reason: fmt.Sprintf("%d proofs of %d events", len(proofs), len(events))}
	}
	for i, p := range proofs {
		if err := p.Verify(keys); err != nil {
			return err
		}
		e := events[i]
		if !sameEvent(p, e) {
			return &Mismatch{Position: e.Position, Stream: stream.String(), Version: e.Event.Version, Field: fmt.Sprintf("proofs[%d]", i),
				Reason: "the proof is not of the event as the history lists it"}
		}
	}
	return nil
}

// chainedPrev is the previous hash e's hash is computed from.
func chainedPrev(e *Proof) Hash {
	if e.Event.Version == 1 {
		return Genesis
	}
	return e.Prev
}

// sameEvent reports whether a and b are the same event in the same place of the log.
func sameEvent(a, b *Proof) bool {
	return a.Hash == b.Hash && chainedPrev(a) == chainedPrev(b) && a.Position == b.Position && a.TransactionID == b.TransactionID &&
		a.Event.ID == b.Event.ID && a.Event.Stream == b.Event.Stream && a.Event.Version == b.Event.Version
}
