package projections

// ThroughputQuery is the overview's per-minute query, for the test that reads its plan.
const ThroughputQuery = throughputQuery
