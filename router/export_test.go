package router

// ElectionName returns the application_name of the projector's lock sessions, so that a test
// can stand in for a former session of the same projector.
func ElectionName(p *Projector) string { return p.election }

// GroupLockKey is groupLockKey, for tests that take a consumer group's lock themselves.
var GroupLockKey = groupLockKey
