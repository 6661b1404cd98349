package receipts

import "github.com/herald-notify/herald"

// MatchSQL is the query that finds a message's notification, for the test of its plan.
const MatchSQL = matchSQL

// OnEarly sets a function Record calls each time it finds the notification a callback names
// not sent yet, before it waits: tests act on the moment the recorder has seen it.
func OnEarly(r *Recorder, f func(n herald.Notification)) { r.onEarly = f }
