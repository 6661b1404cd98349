package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald/redact"
)

// settings binds each setting to a flag and a HERALD_* environment variable. The variable, when
// set, becomes the flag's default, so --help shows what the process would really use and a flag
// on the command line wins over the environment.
type settings struct {
	fs   *pflag.FlagSet
	errs []error
}

// env is the environment variable name, trimmed, and whether it holds anything: a variable set
// to blanks counts as unset.
func (s *settings) env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

// usage is a flag's usage naming its environment variable, as --help and the README show it.
func (s *settings) usage(usage, env string) string { return fmt.Sprintf("%s [$%s]", usage, env) }

// String binds a string setting to its flag and its environment variable.
func (s *settings) String(p *string, flag, env, def, usage string) {
	v, fromEnv := s.env(env)
	if fromEnv {
		def = v
	}
	s.fs.StringVar(p, flag, def, s.usage(usage, env))
	if fromEnv {
		// Shown in --help: a URL's password stays hidden even in a setting not marked secret.
		s.fs.Lookup(flag).DefValue = redact.URL(v)
	}
}

// URL is String for a connection URL, which may carry a password: the password never shows in
// --help, and is masked in every log line and error of the process (see secrets). The compiled-in
// default is documented, so its password is not a secret.
func (s *settings) URL(p *string, flag, env, def, usage string) {
	s.String(p, flag, env, def, usage)
	s.markSecret(flag, secretURL, def)
}

// URLList is String for a comma-separated list of connection URLs, each of which may carry a
// password: no password shows in --help, and each is masked in every log line and error of the
// process (see secrets). A comma inside a URL is escaped as %2C.
func (s *settings) URLList(p *string, flag, env, usage string) {
	s.String(p, flag, env, "", usage)
	if f := s.fs.Lookup(flag); f.DefValue != "" {
		f.DefValue = redactURLList(*p)
	}
	s.markSecret(flag, secretURLList, "")
}

// splitURLList splits a URLList setting's value into its URLs, trimmed, leaving out empty ones.
func splitURLList(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// redactURLList is v with the password of each of its URLs masked.
func redactURLList(v string) string {
	urls := splitURLList(v)
	for i, u := range urls {
		urls[i] = redact.URL(u)
	}
	return strings.Join(urls, ",")
}

// Secret is String for a value that is a secret as a whole (a password, a token, a key): its
// value never shows in --help, only whether it is set, and is masked wherever the process
// would print it (see secrets).
func (s *settings) Secret(p *string, flag, env, usage string) {
	def := ""
	if v, ok := s.env(env); ok {
		def = v
	}
	s.fs.StringVar(p, flag, "", s.usage(usage, env))
	*p = def
	if def != "" {
		s.fs.Lookup(flag).Usage += " (set)"
	}
	s.markSecret(flag, secretValue, "")
}

// secretAnnotation marks a flag that is, or holds, a secret. Its values are the kind (secretURL
// or secretValue) and, for a URL, the compiled-in default, whose password is public.
const secretAnnotation = "herald_secret"

// The kinds of secret: a URL that may carry a password, a list of them, or a value secret as a
// whole.
const (
	secretURL     = "url"
	secretURLList = "urls"
	secretValue   = "value"
)

// markSecret marks one of s's flags as a secret (see markSecret).
func (s *settings) markSecret(flag, kind, def string) { markSecret(s.fs, flag, kind, def) }

// markSecret marks fs's flag as a secret of kind; def is a URL's compiled-in default. A flag that
// is not a setting (bench's --api-key) is marked the same way, so main masks it in errors.
func markSecret(fs *pflag.FlagSet, flag, kind, def string) {
	if err := fs.SetAnnotation(flag, secretAnnotation, []string{kind, def}); err != nil {
		panic(err) // a flag that was never defined: a bug in the command
	}
}

// secrets returns the masking for the secrets s's flags hold now: once the command line is
// parsed, what the command really uses.
func (s *settings) secrets() *redact.Secrets { return flagSecrets(s.fs) }

// flagSecrets collects the secrets the secret flags of every flag set hold.
func flagSecrets(sets ...*pflag.FlagSet) *redact.Secrets {
	var values []string
	for _, fs := range sets {
		fs.VisitAll(func(f *pflag.Flag) {
			a, ok := f.Annotations[secretAnnotation]
			if !ok || len(a) != 2 {
				return
			}
			switch v := f.Value.String(); a[0] {
			case secretValue:
				values = append(values, v)
			case secretURL:
				if v != a[1] {
					// The URL may name several nodes (HERALD_AMQP_URL): mask each one's password.
					for _, u := range redact.URLs(v) {
						values = append(values, redact.Password(u))
					}
				}
			case secretURLList:
				for _, u := range splitURLList(v) {
					values = append(values, redact.Password(u))
				}
			}
		})
	}
	return redact.New(values...)
}

// commandSecrets is flagSecrets of every command under root: what main masks in an error it
// prints, whichever command failed.
func commandSecrets(root *cobra.Command) *redact.Secrets {
	var sets []*pflag.FlagSet
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		sets = append(sets, c.Flags())
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return flagSecrets(sets...)
}

// Int binds a whole-number setting; a malformed variable is an error of the command.
func (s *settings) Int(p *int, flag, env string, def int, usage string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("$%s=%q: not a whole number", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, flag, def, s.usage(usage, env))
}

// Float binds a number setting; a malformed variable is an error of the command.
func (s *settings) Float(p *float64, flag, env string, def float64, usage string) {
	if v, ok := s.env(env); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("$%s=%q: not a number", env, v))
		} else {
			def = n
		}
	}
	s.fs.Float64Var(p, flag, def, s.usage(usage, env))
}

// Duration binds a duration setting; a malformed variable is an error of the command.
func (s *settings) Duration(p *time.Duration, flag, env string, def time.Duration, usage string) {
	if v, ok := s.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("$%s=%q: not a duration (e.g. 500ms, 30s, 1m)", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, flag, def, s.usage(usage, env))
}

// Bool binds a true-or-false setting; a malformed variable is an error of the command.
func (s *settings) Bool(p *bool, flag, env string, def bool, usage string) {
	if v, ok := s.env(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("$%s=%q: not true or false", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, flag, def, s.usage(usage, env))
}

// Strings binds a comma-separated list setting.
func (s *settings) Strings(p *[]string, flag, env string, def []string, usage string) {
	if v, ok := s.env(env); ok {
		def = strings.Split(v, ",")
	}
	s.fs.StringSliceVar(p, flag, def, s.usage(usage, env))
}

// argumentAnnotation marks a flag that says what one invocation acts on (ids, --all, --reason)
// rather than how Herald is set up: such a flag has no environment variable, since a variable
// left set would silently aim every later invocation.
const argumentAnnotation = "herald_argument"

// markArguments marks the named flags of fs as arguments (see argumentAnnotation).
func markArguments(fs *pflag.FlagSet, names ...string) {
	for _, name := range names {
		if err := fs.SetAnnotation(name, argumentAnnotation, []string{"true"}); err != nil {
			panic(err) // a flag that was never defined: a bug in the command
		}
	}
}

// newSettings binds settings to cmd's flags and reports malformed environment variables before
// the command runs.
func newSettings(cmd *cobra.Command) *settings {
	s := &settings{fs: cmd.Flags()}
	cmd.PreRunE = func(*cobra.Command, []string) error { return errors.Join(s.errs...) }
	return s
}
