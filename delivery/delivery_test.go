package delivery_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/herald-notify/herald/delivery"
)

func TestPermanent(t *testing.T) {
	cause := errors.New("550 no such user")
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
		// wantCause is an error errors.Is must still find; nil skips the check.
		wantCause error
	}{
		{name: "nil", err: nil, wantPermanent: false},
		{name: "plain error", err: cause, wantPermanent: false},
		{name: "marked", err: delivery.Permanent(cause), wantPermanent: true, wantCause: cause},
		{name: "marked twice", err: delivery.Permanent(delivery.Permanent(cause)), wantPermanent: true, wantCause: cause},
		{name: "wrapped after marking", err: fmt.Errorf("send n-1: %w", delivery.Permanent(cause)), wantPermanent: true, wantCause: cause},
		{name: "marking a wrapped cause", err: delivery.Permanent(fmt.Errorf("read: %w", io.EOF)), wantPermanent: true, wantCause: io.EOF},
		{name: "joined with a transient error", err: errors.Join(errors.New("timeout"), delivery.Permanent(cause)), wantPermanent: true, wantCause: cause},
		{name: "formatted without %w", err: fmt.Errorf("send: %v", delivery.Permanent(cause)), wantPermanent: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := delivery.IsPermanent(tt.err); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%v) = %t, want %t", tt.err, got, tt.wantPermanent)
			}
			if tt.wantCause != nil && !errors.Is(tt.err, tt.wantCause) {
				t.Errorf("errors.Is(%v, %v) = false, want true", tt.err, tt.wantCause)
			}
		})
	}
}

func TestPermanentNilStaysNil(t *testing.T) {
	if err := delivery.Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
}

func TestPermanentKeepsMessage(t *testing.T) {
	cause := errors.New("550 no such user")
	if got, want := delivery.Permanent(cause).Error(), cause.Error(); got != want {
		t.Errorf("Permanent(err).Error() = %q, want %q", got, want)
	}
}
