// Package e2e holds Herald's end-to-end tests. They build the real herald binary once, run it as
// separate processes (serve, worker, projector, or all) against real PostgreSQL and RabbitMQ, and
// point its providers at loopback SMTP and SMS sinks, then judge Herald only by what a user can
// see: its HTTP API, what arrived at the sinks, the database and the broker's queues.
//
// The tests need PostgreSQL and RabbitMQ with its management API (see heraldtest); without them
// they skip, unless HERALD_TEST_REQUIRE_SERVICES=1 makes that a failure. When a test fails, the
// end of each Herald process's log is printed; E2E_KEEP_LOGS=dir also copies the whole logs there.
package e2e
