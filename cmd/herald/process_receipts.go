package main

import (
	heraldhttp "github.com/herald-notify/herald/http"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/suppressions"
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
	return rc
}

// smsOptOuts is where recipients' own requests to stop or restart SMS are kept: the suppression
// list, where a STOP suppresses the number and a START lifts that opt-out.
func smsOptOuts(pr *process) receipts.OptOuts { return suppressions.New(pr.pool) }
