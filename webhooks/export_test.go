package webhooks

// The statements that take due retries, for the test that checks how PostgreSQL plans them.
const (
	TakeDuePlan = takeDuePlan
	TakeDueSQL  = takeDueSQL
)
