// Package harness runs Herald for its own checks: it creates scratch services — a migrated
// PostgreSQL database with a runtime role, a RabbitMQ virtual host — builds the herald binary,
// starts its processes on them, waits until they are ready, stops them by signal within a
// deadline, and gives back their output with secrets masked.
//
// It is the one way the end-to-end suite, the fault suite (both through heraldtest) and
// `herald bench` do these things. Since `herald bench` is part of the production binary, the
// package returns errors and never imports "testing"; heraldtest turns them into skips,
// failures and cleanups.
package harness
