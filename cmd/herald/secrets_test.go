package main

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// secretName is a setting whose name says it holds a secret, or may (a URL may carry a password).
var secretName = regexp.MustCompile(`_URL$|PASSWORD|TOKEN|SECRET|_KEYS?$`)

// notSecrets are settings named like a secret that hold none: HERALD_CHECKPOINT_KEY holds the
// path of a file with the secret in it (the path is not secret, and the key read from the file
// is never printed); HERALD_CHECKPOINT_PREVIOUS_KEYS holds public keys.
var notSecrets = map[string]bool{"HERALD_CHECKPOINT_KEY": true, "HERALD_CHECKPOINT_PREVIOUS_KEYS": true}

// secretSettings returns the kind (secretURL or secretValue) of every secret setting of every
// command, by variable, as the settings mark them; and checks every setting named like a secret
// is marked, so that one added later is planted by the tests below.
func secretSettings(t *testing.T) map[string]string {
	t.Helper()
	envRef := regexp.MustCompile(`\[\$(HERALD_[A-Z0-9_]+)\]`)
	out := map[string]string{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			a, ok := f.Annotations[secretAnnotation]
			m := envRef.FindStringSubmatch(f.Usage)
			if !ok || m == nil {
				return
			}
			if prev, seen := out[m[1]]; seen && prev != a[0] {
				t.Errorf("%s is a %s secret in one command and a %s secret in another", m[1], prev, a[0])
			}
			out[m[1]] = a[0]
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
	for env, s := range commandSettings(t) {
		if _, ok := out[env]; !ok && secretName.MatchString(env) && !notSecrets[env] {
			t.Errorf("%s (--%s) is named like a secret but not marked as one: register it with settings.URL or settings.Secret", env, s.flag)
		}
	}
	if len(out) == 0 {
		t.Fatal("no secret settings found")
	}
	return out
}

// planted is a distinctive password for each secret setting. Each has a "/" and a "+", which a
// URL escapes, and two halves that must not show either: a parser may quote a piece of a
// password it cut at the "/".
type planted map[string][2]string

func plant(secrets map[string]string) planted {
	p := planted{}
	i := 0
	for env := range secrets {
		i++
		p[env] = [2]string{fmt.Sprintf("Pl4nted%02dQz", i), fmt.Sprintf("Pl4nted%02dRk", i)}
	}
	return p
}

func (p planted) password(env string) string { return p[env][0] + "/+" + p[env][1] }

// env returns the environment planting every secret: a secret value as it is, a URL as base
// with the password put in (a well-formed URL), or, with malformed, as base's scheme, user and
// path around the unescaped password and a port that is not a number.
func (p planted) env(secrets map[string]string, bases map[string]string, malformed bool) map[string]string {
	out := map[string]string{}
	for env, kind := range secrets {
		pw := p.password(env)
		if kind == secretValue {
			out[env] = pw
			continue
		}
		base := bases[env]
		switch {
		case base != "":
		case strings.Contains(env, "DATABASE"):
			// Another database URL (one for migrations, say) points where the main one does.
			base = cmp.Or(bases["HERALD_DATABASE_URL"], defaultDatabaseURL)
		case strings.Contains(env, "AMQP"):
			base = cmp.Or(bases["HERALD_AMQP_URL"], defaultAMQPURL)
		default:
			base = "https://user@127.0.0.1:1/"
		}
		u, err := url.Parse(base)
		if err != nil {
			panic(err)
		}
		user := "herald"
		if u.User != nil {
			user = u.User.Username()
		}
		if malformed {
			out[env] = fmt.Sprintf("%s://%s:%s@%s:bad%s", u.Scheme, user, pw, u.Hostname(), u.EscapedPath())
			continue
		}
		u.User = url.UserPassword(user, pw)
		out[env] = u.String()
	}
	return out
}

// check fails the test if out shows any part of a planted password.
func (p planted) check(t *testing.T, what, out string) {
	t.Helper()
	for env, halves := range p {
		for _, h := range halves {
			if i := strings.Index(out, h); i >= 0 {
				t.Errorf("%s shows %s's password: …%s…", what, env, out[max(0, i-80):min(len(out), i+80)])
				break
			}
		}
	}
}

// commandPaths lists every command, as the arguments that name it ("poison list").
func commandPaths() [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(slices.Clone(path), sub.Name()))
		}
	}
	walk(rootCommand(), nil)
	return out
}

// hasSecret reports whether the command path names registers a secret setting (a flag with a
// HERALD_* variable: bench's secret flags are arguments, and bench run bare is a benchmark).
func hasSecret(path []string) bool {
	c, _, err := rootCommand().Find(path)
	if err != nil {
		return false
	}
	found := false
	c.Flags().VisitAll(func(f *pflag.Flag) {
		_, ok := f.Annotations[secretAnnotation]
		found = found || ok && strings.Contains(f.Usage, "[$HERALD_")
	})
	return found
}

// The built-in defaults, as bases for the planted URLs.
var defaultBases = map[string]string{
	"HERALD_DATABASE_URL":       defaultDatabaseURL,
	"HERALD_AMQP_URL":           defaultAMQPURL,
	"HERALD_SMTP_FAILOVER_URLS": failoverSMTPBase,
}

// failoverSMTPBase is the base of the planted secondary relay: an SMTP URL, as the setting wants.
const failoverSMTPBase = "smtp://herald@127.0.0.1:1/?tls=none"

// TestSecretsNeverPrinted plants a password in every secret setting and reads everything herald
// prints on every path: every command's --help, version, every command failing to start on
// malformed URLs, a start waiting for unreachable services until stopped, and a running process
// with dead dependencies: its /readyz answers and its logs.
func TestSecretsNeverPrinted(t *testing.T) {
	secrets := secretSettings(t)
	p := plant(secrets)
	t.Run("help", func(t *testing.T) { secretsInHelp(t, p, secrets) })
	t.Run("version", func(t *testing.T) { secretsInVersion(t, p, secrets) })
	t.Run("malformed", func(t *testing.T) { secretsInMalformed(t, p, secrets) })
	t.Run("cluster", func(t *testing.T) { secretsInClusterURL(t, p) })
	t.Run("bench", func(t *testing.T) { secretsInBench(t, p, secrets) })
	t.Run("unreachable", func(t *testing.T) { secretsInUnreachable(t, p, secrets) })
	t.Run("running", func(t *testing.T) { secretsInRunning(t, p, secrets) })
}

// secretsInHelp checks every command's --help.
func secretsInHelp(t *testing.T, p planted, secrets map[string]string) {
	env := p.env(secrets, defaultBases, false)
	for _, path := range commandPaths() {
		args := append(slices.Clone(path), "--help")
		out, code := execHerald(t, env, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("herald %s: exit %d, want usage:\n%s", strings.Join(args, " "), code, out)
		}
		p.check(t, "herald "+strings.Join(args, " "), out)
	}
}

// secretsInVersion checks herald version.
func secretsInVersion(t *testing.T, p planted, secrets map[string]string) {
	out, code := execHerald(t, p.env(secrets, defaultBases, false), "version")
	if code != 0 || !strings.HasPrefix(out, "herald ") {
		t.Errorf("herald version: exit %d:\n%s", code, out)
	}
	p.check(t, "herald version", out)
}

// secretsInMalformed checks every command that holds a secret, failing to start on malformed URLs.
func secretsInMalformed(t *testing.T, p planted, secrets map[string]string) {
	// Every URL fails to parse: each command fails at once, quoting whatever its driver
	// quotes.
	env := p.env(secrets, defaultBases, true)
	ran := 0
	for _, path := range commandPaths() {
		if !hasSecret(path) {
			continue
		}
		ran++
		out, code := execHerald(t, env, path...)
		if code == 0 || !strings.Contains(out, "herald:") {
			t.Errorf("herald %s: exit %d, want a failure:\n%s", strings.Join(path, " "), code, out)
		}
		p.check(t, "herald "+strings.Join(path, " "), out)
	}
	if ran < 5 {
		t.Errorf("only %d commands hold secrets", ran)
	}
}

// secretsInBench checks bench refusing invalid flags that carry credentials.
func secretsInBench(t *testing.T, p planted, secrets map[string]string) {
	// bench's credentials are flags of one run, not settings; an invalid run quotes them.
	admin, key := p.password("HERALD_DATABASE_URL"), p.password("HERALD_SMTP_PASSWORD")
	out, code := execHerald(t, nil, "bench", "-n", "1", "--sms-ratio", "2",
		"--admin-database-url", "postgres://postgres:"+admin+"@127.0.0.1:bad/postgres", "--api-key", key)
	if code == 0 || !strings.Contains(out, "--admin-database-url") {
		t.Errorf("herald bench with invalid flags: exit %d, want its flags refused:\n%s", code, out)
	}
	p.check(t, "herald bench", out)
}

// secretsInClusterURL checks --help and a failing start with HERALD_AMQP_URL naming several
// nodes: every node's password is masked, not only the first URL's — including one that differs
// from the first (a setting the services refuse, in an error that must not quote it either).
func secretsInClusterURL(t *testing.T, p planted) {
	pw := p.password("HERALD_AMQP_URL")
	other := p.password("HERALD_DATABASE_URL")
	for _, v := range []string{
		"amqp://herald:" + url.QueryEscape(pw) + "@127.0.0.1:1/v,amqp://herald:" + url.QueryEscape(pw) + "@127.0.0.1:2/v",
		"amqp://herald:" + url.QueryEscape(pw) + "@127.0.0.1:1/v,amqp://herald:" + url.QueryEscape(other) + "@127.0.0.1:2/v",
		"amqp://herald:" + pw + "@127.0.0.1:1/v, amqp://herald:" + other + "@127.0.0.1:bad/v",
	} {
		env := map[string]string{"HERALD_AMQP_URL": v}
		for _, args := range [][]string{{"worker", "--help"}, {"poison", "list", "--help"}, {"poison", "list"}} {
			out, _ := execHerald(t, env, args...)
			p.check(t, "herald "+strings.Join(args, " "), out)
		}
	}
}
