package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// settings binds each setting to a flag and a HERALD_* environment variable. The variable, when
// set, becomes the flag's default, so --help shows what the process would really use and a flag
// on the command line wins over the environment.
type settings struct {
	fs   *pflag.FlagSet
	errs []error
}

func (s *settings) env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func (s *settings) usage(usage, env string) string { return fmt.Sprintf("%s [$%s]", usage, env) }

func (s *settings) String(p *string, flag, env, def, usage string) {
	if v, ok := s.env(env); ok {
		def = v
	}
	s.fs.StringVar(p, flag, def, s.usage(usage, env))
}

func (s *settings) Secret(p *string, flag, env, usage string) {
	// A secret's value never shows in --help; only whether it is set.
	def := ""
	if v, ok := s.env(env); ok {
		def = v
	}
	s.fs.StringVar(p, flag, "", s.usage(usage, env))
	*p = def
	if f := s.fs.Lookup(flag); f != nil && def != "" {
		f.Usage += " (set)"
	}
}

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
