package main

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/herald-notify/herald"
)

// fieldNames says how cliError names an invalid input's fields.
type fieldNames int

// The ways cliError names fields.
const (
	// fieldsAsWords names fields as the domain does ("channel", "ids") after the error's message.
	fieldsAsWords fieldNames = iota
	// fieldsAsFlags names each field as the flag that set it (from_position: --from-position);
	// the fields then say all there is, and the message is left out.
	fieldsAsFlags
)

// cliError turns an error from the domain into what a person at a terminal should read: a
// *herald.Error as its message and its offending fields, in sorted order so that the same mistake
// always reads the same, without its code; an unavailable dependency with its cause; an internal
// error, or any other, as it is.
func cliError(err error, names fieldNames) error {
	var he *herald.Error
	if !errors.As(err, &he) || he.Code == herald.EINTERNAL {
		return err
	}
	fields := slices.Sorted(maps.Keys(he.Fields))
	if names == fieldsAsFlags && len(fields) > 0 {
		msgs := make([]string, len(fields))
		for i, k := range fields {
			msgs[i] = "--" + strings.ReplaceAll(k, "_", "-") + ": " + he.Fields[k]
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	msg := he.Message
	var more []string
	for _, k := range fields {
		// A message that names the field already says what is wrong with it.
		if !strings.Contains(msg, k) {
			more = append(more, k+" "+he.Fields[k])
		}
	}
	if len(more) > 0 {
		msg += ": " + strings.Join(more, "; ")
	}
	if he.Code == herald.EUNAVAILABLE && he.Err != nil {
		msg += ": " + he.Err.Error()
	}
	return errors.New(msg)
}
