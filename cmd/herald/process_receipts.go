package main

import (
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/receipts"
)

// smsReceipts is what the API takes the SMS gateway's callbacks in with. Without a public URL
// or an auth token there is nothing to check their signatures with, and the routes say so.
func (cfg *processConfig) smsReceipts(pr *process) heraldhttp.SMSReceipts {
	rc := heraldhttp.SMSReceipts{Status: receipts.NewRecorder(pr.pool, pr.logger), OptOuts: smsOptOuts(pr)}
	v, off := cfg.gateway.verifier()
	if v == nil {
		pr.logger.Info("sms receipts off: the API answers the gateway's callbacks 404", "reason", off)
		return rc
	}
	rc.Verifier = v
	if rc.OptOuts == nil {
		pr.logger.Info("sms opt-outs off: the API answers the gateway's inbound messages 404", "reason", "no opt-out store")
	}
	return rc
}

// smsOptOuts is where recipients' own requests to stop or restart SMS are kept. There is no such
// store yet: nil turns the inbound route off (404) until one is passed here.
func smsOptOuts(*process) receipts.OptOuts { return nil }
