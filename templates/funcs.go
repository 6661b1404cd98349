package templates

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herald-notify/herald"
)

// copyVariables returns the variables as the template sees them (see the package comment),
// the length of the longest string among them, and an EINVALID error naming every variable that
// is not valid UTF-8.
func copyVariables(vars map[string]any) (map[string]any, int, error) {
	c := &variableCopier{bad: make(map[string]string)}
	data := make(map[string]any, len(vars))
	for name, v := range vars {
		path := []string{name}
		c.see(name, path)
		data[name] = c.convert(v, path)
	}
	if len(c.bad) > 0 {
		return nil, 0, herald.Invalid("variables are not valid UTF-8", c.bad)
	}
	return data, c.longest, nil
}

type variableCopier struct {
	longest int
	bad     map[string]string
}

// convert returns v as the template sees it; path names it for errors.
func (c *variableCopier) convert(v any, path []string) any {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		c.see(v, path)
		return v
	case json.Number:
		c.see(string(v), path)
		if i, err := v.Int64(); err == nil {
			return i
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, elem := range v {
			out[i] = c.convert(elem, append(path, "["+strconv.Itoa(i)+"]"))
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, elem := range v {
			keyPath := append(path, key)
			c.see(key, keyPath)
			out[key] = c.convert(elem, keyPath)
		}
		return out
	}
	return v
}

func (c *variableCopier) see(s string, path []string) {
	c.longest = max(c.longest, len(s))
	if utf8.ValidString(s) {
		return
	}
	var b strings.Builder
	b.WriteString("variables")
	for _, p := range path {
		if !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		// The key itself may be the invalid part; the error must still be printable JSON.
		b.WriteString(strings.ToValidUTF8(p, "\uFFFD"))
	}
	c.bad[b.String()] = "is not valid UTF-8"
}

// textFunction adapts f to template values, so that a number passed to it is reported in the
// client's terms rather than as "expected string; got int64".
func textFunction(name string, f func(string) string) func(any) (string, error) {
	return func(v any) (string, error) {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%s needs text, not %s", name, describe(v))
		}
		return f(s), nil
	}
}

// defaultValue is the template function default: value, unless it is absent or empty.
func defaultValue(fallback, value any) any {
	switch v := value.(type) {
	case nil:
		return fallback
	case string:
		if v == "" {
			return fallback
		}
	case []any:
		if len(v) == 0 {
			return fallback
		}
	case map[string]any:
		if len(v) == 0 {
			return fallback
		}
	}
	return value
}

// rangeError is what a range guard stops a rendering with.
type rangeError struct{ msg string }

func (e *rangeError) Error() string { return e.msg }

// rangeGuard returns the function piped after the value of a range whose body costs bodyCost
// steps. It lets lists and objects through and charges their length times bodyCost to spent.
func rangeGuard(bodyCost int64, spent *int64) func(any) (any, error) {
	return func(v any) (any, error) {
		switch v := v.(type) {
		case nil:
			return nil, nil
		case string:
			if v == "" {
				// null, or an optional variable left out: nothing to repeat.
				return nil, nil
			}
		}
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
		default:
			return nil, &rangeError{"range needs a list or an object, not " + describe(v)}
		}
		*spent += int64(rv.Len()) * bodyCost
		if *spent > maxSteps {
			return nil, &rangeError{fmt.Sprintf(
				"repeating the loop for %d items needs too much work: use fewer items or a shorter loop", rv.Len())}
		}
		return v, nil
	}
}

// describe names the kind of v in client terms.
func describe(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Invalid:
		return "null"
	case reflect.String:
		if _, ok := v.(json.Number); ok {
			return "a number"
		}
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}
