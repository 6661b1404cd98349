package handlers

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bounds of the numbers in variables. PostgreSQL stores JSON numbers as numeric, which refuses
// magnitudes past about 1e131072 and writes a number like 1e131071 out in full (128 KB from 8
// bytes): a written exponent is bounded, and so is the magnitude, however it is written.
const (
	maxWrittenExponent = 1000
	maxMagnitude       = 100_000
)

// hugeNumberPath returns the path of the first number in v past those bounds.
func hugeNumberPath(v any, path string) string {
	switch v := v.(type) {
	case json.Number:
		written, magnitude := exponentOf(string(v))
		if written > maxWrittenExponent || magnitude > maxMagnitude {
			return path
		}
	case map[string]any:
		for k, e := range v {
			if p := hugeNumberPath(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := hugeNumberPath(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// exponentOf returns the magnitudes of a JSON number's written exponent and of its decimal
// exponent: the written one shifted by the digits before the point, or by the zeros after it.
func exponentOf(n string) (written, magnitude int) {
	mantissa, exp, _ := strings.Cut(strings.ToLower(n), "e")
	e := 0
	if exp != "" {
		v, err := strconv.Atoi(exp)
		if err != nil {
			return math.MaxInt, math.MaxInt // too long to be an int: far out of range
		}
		e = v
	}
	written = abs(e)
	mantissa = strings.TrimLeft(mantissa, "-")
	whole, frac, _ := strings.Cut(mantissa, ".")
	if w := strings.TrimLeft(whole, "0"); w != "" {
		e += len(w) - 1
	} else if f := strings.TrimLeft(frac, "0"); f != "" {
		e -= len(frac) - len(f) + 1
	} else {
		return written, 0 // zero
	}
	return written, abs(e)
}

// abs is the magnitude of n.
func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// nulPath returns the path of the first key or string in v that contains U+0000, or "".
func nulPath(v any, path string) string {
	switch v := v.(type) {
	case string:
		if strings.ContainsRune(v, 0) {
			return path
		}
	case map[string]any:
		for k, e := range v {
			if strings.ContainsRune(k, 0) {
				return path
			}
			if p := nulPath(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := nulPath(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
