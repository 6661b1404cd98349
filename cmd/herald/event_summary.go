package main

import "github.com/herald-notify/herald/events"

// eventsDataSummary says in a few words what r records, for the DATA column of `herald events
// list`: the events package says what each event means; an event whose data cannot be read says
// why.
func eventsDataSummary(r events.Recorded) string {
	e, err := r.Event()
	if err != nil {
		return "unreadable data: " + err.Error()
	}
	return events.Describe(e)
}
