// Package webhooks owns what Herald will send to its clients' endpoints when a notification moves:
// the secrets that sign a payload and the signature itself, in the format of the Standard Webhooks
// specification (https://www.standardwebhooks.com): the headers webhook-id, webhook-timestamp and
// webhook-signature, an HMAC-SHA256 over "id.timestamp.body". The payload's JSON shape is
// wire.WebhookPayload.
//
// Receivers verify with Verify, or with any Standard Webhooks library.
package webhooks
