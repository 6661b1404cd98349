package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-notify/herald"
)

// An error with many fields reads the same every time, its fields in sorted order: a map's
// order is random, so a rendering that followed it would differ between two runs of the same
// command, here between two of the fifty renderings.
func TestCLIErrorSortsFields(t *testing.T) {
	fields := map[string]string{}
	var words, flags []string
	for i := range 20 {
		k := fmt.Sprintf("field_%02d", i)
		fields[k] = fmt.Sprintf("wrong %d", i)
		words = append(words, fmt.Sprintf("%s wrong %d", k, i))
		flags = append(flags, fmt.Sprintf("--field-%02d: wrong %d", i, i))
	}
	err := herald.Invalid("the input is invalid", fields)
	wantWords := "the input is invalid: " + strings.Join(words, "; ")
	wantFlags := strings.Join(flags, "; ")
	for range 50 {
		if got := cliError(err, fieldsAsWords).Error(); got != wantWords {
			t.Fatalf("as words:\n got %s\nwant %s", got, wantWords)
		}
		if got := cliError(err, fieldsAsFlags).Error(); got != wantFlags {
			t.Fatalf("as flags:\n got %s\nwant %s", got, wantFlags)
		}
	}
}

func TestCLIError(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:5672: connection refused")
	internal := fmt.Errorf("append: %w", errors.New("boom"))
	tests := []struct {
		name  string
		err   error
		names fieldNames
		want  string
	}{
		{"a message alone", herald.Errorf(herald.ENOTFOUND, "no notification x"), fieldsAsWords, "no notification x"},
		{"no code shown", herald.Errorf(herald.ECONFLICT, "the stream moved on"), fieldsAsFlags, "the stream moved on"},
		{"a field the message names is not repeated",
			herald.Invalid("the cursor is invalid", map[string]string{"cursor": "is not one", "limit": "too big"}), fieldsAsWords,
			"the cursor is invalid: limit too big"},
		{"no fields as flags keeps the message", herald.Invalid("the filter is invalid", nil), fieldsAsFlags, "the filter is invalid"},
		{"an unavailable dependency says why",
			&herald.Error{Code: herald.EUNAVAILABLE, Message: "the poison queue is unreachable", Err: cause}, fieldsAsWords,
			"the poison queue is unreachable: " + cause.Error()},
		{"an internal error is left as it is", internal, fieldsAsWords, internal.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cliError(tt.err, tt.names).Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if err := cliError(nil, fieldsAsWords); err != nil {
		t.Errorf("cliError(nil) = %v, want nil", err)
	}
	if err := cliError(internal, fieldsAsWords); !errors.Is(err, internal) {
		t.Errorf("an internal error lost its chain: %v", err)
	}
}
