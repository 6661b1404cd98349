// Package bounces owns what comes back after an email was sent: the inbound SMTP listener on
// the bounce domain (the return path every email carries when HERALD_BOUNCE_DOMAIN is set),
// the reading of delivery status notifications (RFC 3464) and feedback reports (RFC 5965), the
// raw reports kept for operators (table inbound_reports), and the events they become on the
// notification's stream: NotificationBounced and NotificationComplained.
//
// A report is matched to its notification by the return path's local part
// (bounces+ID@domain), or else by the returned message's X-Herald-Notification-Id or
// Message-ID. The event, the report's outcome and the recipient's suppression are written in
// one transaction. Mail that is no report, or matches no notification, is kept and counted,
// never dropped, and accepted all the same: refusing it would only make a bounce of a bounce.
package bounces
