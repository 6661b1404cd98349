package bench

import (
	"hash/fnv"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/herald-notify/herald"
)

// Per-notification state is kept in parallel slices indexed by the notification's number in the
// run (0…N-1), about 44 bytes each: 44 MB for a million. The number travels in the recipient's
// address, so a sink finds a delivery's notification without a map.
//
// Writers are the HTTP clients (accept), the sinks (delivery) and the poller (status); each field
// has one kind of writer, and fields read by another goroutine are atomics.
type tracker struct {
	n     int
	start time.Time // monotonic base of the times below

	// ids are the notification ids the API answered with. ids[i] is written once, before the
	// accepted flag is set, and read only after that flag was seen.
	ids [][16]byte
	// acceptedAt and deliveredAt are nanoseconds since start, plus one (0: not yet).
	acceptedAt  []atomic.Int64
	deliveredAt []atomic.Int64
	// deliveries counts arrivals at the sinks.
	deliveries []atomic.Uint32
	// deliveredHash is a hash of the notification id the first delivery carried (0: none), to
	// check that a recipient got its own notification.
	deliveredHash []atomic.Uint32
	flags         []atomic.Uint32

	lastDelivery atomic.Int64 // nanoseconds since start of the latest first delivery
	distinct     atomic.Int64 // notifications delivered at least once
	arrivals     atomic.Int64 // every delivery, duplicates included
	unexpected   atomic.Int64 // deliveries to recipients that are not this run's
	hashMismatch atomic.Int64 // deliveries that carried another notification's id
}

// What is known of a notification, as bits of tracker.flags: the 202, an arrival at a sink,
// the status API saying sent or failed, and whether it is in the sample.
const (
	flagAccepted uint32 = 1 << iota
	flagDelivered
	flagSent
	flagFailed
	flagSampled
)

// newTracker tracks n notifications, timing them from start.
func newTracker(n int, start time.Time) *tracker {
	return &tracker{
		n:             n,
		start:         start,
		ids:           make([][16]byte, n),
		acceptedAt:    make([]atomic.Int64, n),
		deliveredAt:   make([]atomic.Int64, n),
		deliveries:    make([]atomic.Uint32, n),
		deliveredHash: make([]atomic.Uint32, n),
		flags:         make([]atomic.Uint32, n),
	}
}

// since turns at into the tracker's time: nanoseconds since start, plus one, so that 0 is
// free to mean "not yet".
func (t *tracker) since(at time.Time) int64 { return int64(at.Sub(t.start)) + 1 }

// at turns a tracker time back into a time.
func (t *tracker) at(v int64) time.Time { return t.start.Add(time.Duration(v - 1)) }

// accept records that notification i was accepted with id at at. It reports whether i was
// already delivered (a sink can be faster than the 202 reaching the client).
func (t *tracker) accept(i int, id [16]byte, at time.Time) (delivered bool) {
	t.ids[i] = id
	t.acceptedAt[i].Store(t.since(at))
	return t.flags[i].Or(flagAccepted)&flagDelivered != 0
}

// deliver records an arrival of notification i carrying id (a UUID, or "" if it carried none).
// It reports whether this was the first arrival and whether i was already accepted.
func (t *tracker) deliver(i int, id string, at time.Time) (first, accepted bool) {
	if i < 0 || i >= t.n {
		t.unexpected.Add(1)
		return false, false
	}
	t.arrivals.Add(1)
	h := idHash(id)
	if t.deliveries[i].Add(1) != 1 {
		if t.deliveredHash[i].Load() != h {
			t.hashMismatch.Add(1)
		}
		return false, false
	}
	t.deliveredHash[i].Store(h)
	v := t.since(at)
	t.deliveredAt[i].Store(v)
	storeMax(&t.lastDelivery, v)
	t.distinct.Add(1)
	return true, t.flags[i].Or(flagDelivered)&flagAccepted != 0
}

// idHash hashes a notification id; never 0, so that 0 can mean "none".
func idHash(id string) uint32 {
	if u, err := uuid.Parse(id); err == nil {
		id = u.String()
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(id))
	return f.Sum32() | 1
}

// accepted says whether notification i was answered 202.
func (t *tracker) accepted(i int) bool { return t.flags[i].Load()&flagAccepted != 0 }

// terminal says whether notification i is known to be sent or failed.
func (t *tracker) terminal(i int) bool { return t.flags[i].Load()&(flagSent|flagFailed) != 0 }

// id is the notification id the API answered for notification i; valid once it is accepted.
func (t *tracker) id(i int) string { return uuid.UUID(t.ids[i]).String() }

// Recipients carry the notification's number: b<i>@bench.herald.test and +1999<i, 9 digits>.
const (
	emailDomain = "@bench.herald.test"
	smsPrefix   = "+1999"
)

// emailRecipient is notification i's email address.
func emailRecipient(i int) string { return "b" + strconv.Itoa(i) + emailDomain }

// smsRecipient is notification i's phone number: the number, zero-padded to nine digits.
func smsRecipient(i int) string {
	s := strconv.Itoa(i)
	return smsPrefix + strings.Repeat("0", max(0, 9-len(s))) + s
}

// recipientIndex returns the notification number an address or phone number carries, or -1.
func recipientIndex(recipient string) int {
	r := strings.ToLower(strings.Trim(strings.TrimSpace(recipient), "<>"))
	var digits string
	switch {
	case strings.HasSuffix(r, emailDomain) && strings.HasPrefix(r, "b"):
		digits = strings.TrimSuffix(strings.TrimPrefix(r, "b"), emailDomain)
	case strings.HasPrefix(r, smsPrefix) && len(r) == len(smsPrefix)+9:
		digits = strings.TrimPrefix(r, smsPrefix)
	default:
		return -1
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// channelOf is the channel notification i is sent through, as isSMS decides.
func channelOf(i int, ratio float64) herald.Channel {
	if isSMS(i, ratio) {
		return herald.ChannelSMS
	}
	return herald.ChannelEmail
}

// isSMS says whether notification i is an SMS: a share ratio of the numbers, spread evenly.
func isSMS(i int, ratio float64) bool {
	return int(float64(i+1)*ratio) > int(float64(i)*ratio)
}
