// Package receipts owns what an SMS gateway reports back about the messages Herald sent: status
// callbacks, matched to their notification by the id their callback URL names (or, for messages
// sent before it did, by the gateway's message id), waited for when they overtake the worker's
// NotificationSent, and recorded as NotificationDelivered or NotificationUndelivered on its
// stream; and recipients' own requests to stop or restart SMS, handed to an OptOuts. It verifies the gateway's signature the way Twilio
// signs (signature.go), decides what a report means for a notification (status.go, pure) and
// reads the inbound keywords (inbound.go, pure). The HTTP edge only reads forms and answers.
package receipts
