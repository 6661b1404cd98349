// Package handlers owns Herald's decisions: accepting a notification (validate, render, record it
// and queue its delivery in one transaction), delivering it (load the stream, decide, append,
// send, append the outcome), an operator's requeue or discard of a failed one, and the
// reconciler's recovery of a stalled one. Pure decision functions say which events follow a
// state and an input; the handlers around them do the loading and appending.
//
// Each file has one job. Accepting: accept.go (the Acceptor and its transaction), validate.go and
// variables.go (the pure checks of a request and of its variables), idempotency.go (the
// idempotency keys, in SQL), outbox.go (what a handler writes in the same transaction).
// Delivering: decide.go (the pure decisions), deliver.go (the Deliverer), start_steps.go (how an
// attempt's start reads and writes PostgreSQL: in one transaction, or each step alone). Operators: parked.go
// (the poison queue as they see it), poison_state.go (what they need of a stream beyond its
// fold), poison_plan.go (the pure checks and plans of an action), poison.go (the Operator's reads
// and writes), poison_page.go (paging the queue). Recovering: reconcile.go. Scheduled sends:
// schedule.go (the schedule row, the release decision, and the one constructor of the command).
package handlers
