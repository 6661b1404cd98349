package wire

import "github.com/herald-notify/herald"

// CancelResult is what a cancel did to one notification, as `herald notifications cancel -o
// json` prints it: cancelled, or why not, with the error the API answers for the same refusal.
type CancelResult struct {
	ID        string `json:"id"`
	Cancelled bool   `json:"cancelled"`
	// Status is the notification's status afterwards: cancelled, or the one that refused the
	// cancel; empty when the notification is unknown.
	Status  string       `json:"status"`
	Version int64        `json:"version"`
	Error   *ErrorDetail `json:"error,omitempty"`
	Links   Links        `json:"links"`
}

// NewCancelResult returns the result of cancelling notification id: n as it is afterwards, and
// err, the refusal, if any.
func NewCancelResult(id string, n herald.Notification, err error) CancelResult {
	r := CancelResult{ID: id, Cancelled: err == nil, Status: string(n.Status), Version: n.Version, Links: LinksFor(id)}
	if err != nil {
		r.Error = &ErrorDetail{Code: herald.ErrorCode(err), Message: herald.ErrorMessage(err), Fields: herald.ErrorFields(err)}
	}
	return r
}

// CancelResults are what a cancel did, one result per notification named, in the order named.
type CancelResults struct {
	Results []CancelResult `json:"results"`
}
