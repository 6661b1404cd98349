package harness

import (
	"strings"

	"github.com/herald-notify/herald/redact"
)

// secretWords mark a setting whose value is a secret as a whole.
var secretWords = []string{"PASSWORD", "TOKEN", "SECRET", "KEY"}

// isSecretSetting reports whether the variable name holds a secret as a whole.
func isSecretSetting(name string) bool {
	upper := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(upper, w) {
			return true
		}
	}
	return false
}

// RedactSetting returns the NAME=value setting kv fit to print: the value of a variable whose
// name says it is a secret is replaced by "…", and the password of a URL is masked.
func RedactSetting(kv string) string {
	k, v, _ := strings.Cut(kv, "=")
	if isSecretSetting(k) {
		return k + "=…"
	}
	if strings.Contains(v, "://") {
		return k + "=" + redact.URL(v)
	}
	return kv
}

// SecretsOf returns what must not be printed of a process's settings: the values of the
// variables RedactSetting hides, and the passwords of the URLs among them.
func SecretsOf(env map[string]string) *redact.Secrets {
	var values []string
	for k, v := range env {
		switch {
		case isSecretSetting(k):
			values = append(values, v)
		case strings.Contains(v, "://"):
			if pw := redact.Password(v); pw != "" {
				values = append(values, pw)
			}
		}
	}
	return redact.New(values...)
}
