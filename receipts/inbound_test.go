package receipts_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/receipts"
	"github.com/herald-notify/herald/receipts/receiptstest"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		body, optOutType string
		want             receipts.Request
	}{
		{"STOP", "", receipts.RequestOptOut},
		{"  stop\n", "", receipts.RequestOptOut},
		{"StopAll", "", receipts.RequestOptOut},
		{"unsubscribe", "", receipts.RequestOptOut},
		{"CANCEL", "", receipts.RequestOptOut},
		{"end", "", receipts.RequestOptOut},
		{"Quit", "", receipts.RequestOptOut},
		{"please stop texting me", "STOP", receipts.RequestOptOut},
		{"START", "", receipts.RequestOptIn},
		{"unstop", "", receipts.RequestOptIn},
		{"yes", "", receipts.RequestOptIn},
		{"whatever", "START", receipts.RequestOptIn},
		{"HELP", "HELP", receipts.RequestNone},
		{"stop it", "", receipts.RequestNone},
		{"thanks!", "", receipts.RequestNone},
		{"", "", receipts.RequestNone},
	}
	for _, tt := range tests {
		m := receipts.InboundMessage{MessageSID: "SM1", From: "+15550100001", Body: tt.body, OptOutType: tt.optOutType}
		if got := receipts.Classify(m); got != tt.want {
			t.Errorf("Classify(body %q, OptOutType %q) = %q, want %q", tt.body, tt.optOutType, got, tt.want)
		}
	}
}

func TestTakeInbound(t *testing.T) {
	tests := []struct {
		name  string
		m     receipts.InboundMessage
		want  receipts.Request
		calls []receiptstest.Call
	}{
		{"stop", receipts.InboundMessage{MessageSID: "SM1", From: "+15550100001", Body: " stop "}, receipts.RequestOptOut,
			[]receiptstest.Call{{Op: "opt_out", Recipient: "+15550100001", Detail: "STOP from gateway message SM1"}}},
		{"gateway's opt-out type", receipts.InboundMessage{MessageSID: "SM2", From: "+15550100001", Body: "no more please", OptOutType: "STOP"},
			receipts.RequestOptOut, []receiptstest.Call{{Op: "opt_out", Recipient: "+15550100001", Detail: "STOP from gateway message SM2"}}},
		{"start", receipts.InboundMessage{MessageSID: "SM3", From: "+15550100001", Body: "Unstop"}, receipts.RequestOptIn,
			[]receiptstest.Call{{Op: "opt_in", Recipient: "+15550100001", Detail: "UNSTOP from gateway message SM3"}}},
		{"a reply", receipts.InboundMessage{MessageSID: "SM4", From: "+15550100001", Body: "see you at 5"}, receipts.RequestNone, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &receiptstest.OptOuts{}
			got, err := receipts.TakeInbound(t.Context(), opts, tt.m)
			if err != nil || got != tt.want {
				t.Errorf("TakeInbound = %q, %v; want %q", got, err, tt.want)
			}
			if diff := cmp.Diff(tt.calls, opts.Calls()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTakeInboundErrors(t *testing.T) {
	opts := &receiptstest.OptOuts{}
	_, err := receipts.TakeInbound(t.Context(), opts, receipts.InboundMessage{MessageSID: "SM1", Body: "STOP"})
	if herald.ErrorCode(err) != herald.EINVALID || len(opts.Calls()) != 0 {
		t.Errorf("STOP without a sender: %v and %d calls; want EINVALID and none", err, len(opts.Calls()))
	}
	failing := &receiptstest.OptOuts{Err: errors.New("store down")}
	_, err = receipts.TakeInbound(t.Context(), failing, receipts.InboundMessage{MessageSID: "SM1", From: "+15550100001", Body: "STOP"})
	if err == nil || herald.ErrorCode(err) != herald.EINTERNAL {
		t.Errorf("a failing store: err = %v, want an internal error", err)
	}
}
