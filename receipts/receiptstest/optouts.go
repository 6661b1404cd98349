// Package receiptstest gives tests of SMS receipts an in-memory OptOuts that records its calls.
package receiptstest

import (
	"context"
	"sync"

	"github.com/herald-notify/herald/receipts"
)

// Call is one request an OptOuts was handed.
type Call struct {
	// Op is "opt_out" or "opt_in".
	Op        string
	Recipient string
	Detail    string
}

// OptOuts records every call, in order, and answers each with Err.
type OptOuts struct {
	mu    sync.Mutex
	calls []Call
	// Err, if set, is what every call returns (after being recorded).
	Err error
}

var _ receipts.OptOuts = (*OptOuts)(nil)

// OptOut records an opt-out.
func (o *OptOuts) OptOut(_ context.Context, recipient, detail string) error {
	return o.record(Call{Op: string(receipts.RequestOptOut), Recipient: recipient, Detail: detail})
}

// OptIn records an opt-in.
func (o *OptOuts) OptIn(_ context.Context, recipient, detail string) error {
	return o.record(Call{Op: string(receipts.RequestOptIn), Recipient: recipient, Detail: detail})
}

func (o *OptOuts) record(c Call) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, c)
	return o.Err
}

// Calls returns the calls so far.
func (o *OptOuts) Calls() []Call {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Call(nil), o.calls...)
}
