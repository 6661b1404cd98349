// Package deliverytest provides real loopback sinks for the delivery providers: an SMTP server and
// a Twilio-style SMS gateway, each listening on 127.0.0.1 with an ephemeral port. Unit tests point a
// provider at them; end-to-end tests point spawned Herald processes at them. Both record what they
// receive, count every attempt, and fail or stall on demand per recipient, so retry and timeout
// paths run over real sockets instead of against a mock.
package deliverytest
