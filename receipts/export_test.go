package receipts

// MatchSQL is the query that finds a message's notification, for the test of its plan.
const MatchSQL = matchSQL
