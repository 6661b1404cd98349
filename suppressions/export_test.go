package suppressions

// LookupQuery is Lookup's statement, for the benchmark to show its plan.
const LookupQuery = lookupQuery
