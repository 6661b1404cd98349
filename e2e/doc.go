// Package e2e holds Herald's end-to-end tests. They build the real herald binary once, run it as
// separate processes (serve, worker, projector, or all) against real PostgreSQL and RabbitMQ, and
// point its providers at loopback SMTP and SMS sinks, then judge Herald only by what a user can
// see: its HTTP API, what arrived at the sinks, the database and the broker's queues.
//
// The tests need PostgreSQL and RabbitMQ with its management API (see heraldtest); without them
// they skip, unless HERALD_TEST_REQUIRE_SERVICES=1 makes that a failure. When a test fails, the
// end of each Herald process's log is printed; E2E_KEEP_LOGS=dir also copies the whole logs there.
//
// Two suites behind build tags run servers of their own, since they break them: the fault suite
// (-tags faults: a RabbitMQ node it stops, processes it kills) and the scale suite (-tags scale: a
// three-node RabbitMQ cluster and a PostgreSQL primary with a synchronous standby, each losing a
// server under load). They share the load generator and the accounting (faults_load_test.go,
// faults_check_test.go, faults_compare_test.go) and the RabbitMQ node (faults_rabbit_test.go).
package e2e
