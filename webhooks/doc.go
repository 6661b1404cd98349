// Package webhooks owns what Herald will send to its clients' endpoints when a notification moves:
// the secrets that sign a payload and the signature itself, in the format of the Standard Webhooks
// specification (https://www.standardwebhooks.com): the headers webhook-id, webhook-timestamp and
// webhook-signature, an HMAC-SHA256 over "id.timestamp.body". The payload's JSON shape is
// wire.WebhookPayload.
//
// Receivers verify with Verify, or with any Standard Webhooks library.
//
// Client posts a payload where Policy allows and nowhere else: https only, no credentials in the
// URL, and no loopback, private, link-local or metadata address — checked when an endpoint is
// registered (ValidateURL) and again on the address actually dialled, so a name that resolves
// inside, or a DNS answer that changes later, is refused too. Redirects are not followed, no proxy
// is used, and answers are read only up to a cap.
//
// Endpoints keeps the registered endpoints; Dispatcher reads the log for each of them with an
// offset of its own, and the signed checkpoints (wire.WebhookCheckpointPayload) for those that
// name checkpoint.signed with another (checkpoints.go); Sender posts and records, with retries on
// a schedule; replays send past events again.
package webhooks
