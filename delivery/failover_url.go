package delivery

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// providerName is what a provider may be called: it shows in events, metrics and the breakers'
// table, so it stays short and plain.
var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// The errors of ParseSMTPURL and ParseSMSURL never quote the URL: it may carry a password, and
// a URL that does not parse cannot be trusted to have it masked.

// ParseSMTPURL reads a secondary SMTP relay from a URL:
//
//	smtp://USER:PASSWORD@HOST:PORT?tls=starttls&from=…&name=…&timeout=20s&message_id_domain=…
//
// smtps:// means tls=implicit. USER, PASSWORD (percent-escaped) and PORT may be left out; the
// query's keys are optional too. What the URL does not say comes from base, the primary's
// config, but for the credentials, which are the relay's own, and the name, which is name unless
// the URL gives one.
func ParseSMTPURL(raw string, base SMTPConfig, name string) (SMTPConfig, error) {
	u, err := parseProviderURL(raw, "smtp", "smtps")
	if err != nil {
		return SMTPConfig{}, err
	}
	cfg := base
	cfg.Name, cfg.Host, cfg.Port, cfg.Username, cfg.Password = name, u.Hostname(), 0, "", ""
	if u.Scheme == "smtps" {
		cfg.TLS = TLSImplicit
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, errors.New("port is not a number from 1 to 65535")
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q := u.Query()
	if err := onlyKeys(q, "name", "tls", "from", "timeout", "message_id_domain"); err != nil {
		return SMTPConfig{}, err
	}
	if v := q.Get("name"); v != "" {
		cfg.Name = v
	}
	if v := q.Get("tls"); v != "" {
		if u.Scheme == "smtps" && v != TLSImplicit {
			return SMTPConfig{}, fmt.Errorf("tls=%s contradicts smtps://, which is implicit TLS", v)
		}
		cfg.TLS = v
	}
	if v := q.Get("from"); v != "" {
		cfg.From = v
	}
	if v := q.Get("message_id_domain"); v != "" {
		cfg.MessageIDDomain = v
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return SMTPConfig{}, fmt.Errorf("timeout=%s is not a positive duration (e.g. 20s)", v)
		}
		cfg.Timeout = d
	}
	if !providerName.MatchString(cfg.Name) {
		return SMTPConfig{}, fmt.Errorf("name=%s: want lower-case letters, digits, '.', '_' or '-', at most 63", cfg.Name)
	}
	// NewSMTP says what else is wrong, without the password.
	if _, err := NewSMTP(cfg); err != nil {
		return SMTPConfig{}, err
	}
	return cfg, nil
}

// ParseSMSURL reads a secondary SMS gateway from a URL:
//
//	https://ACCOUNT_SID:AUTH_TOKEN@HOST/BASE?from=…&name=…&timeout=20s
//
// The user and password are the gateway account's sid and token (percent-escaped), and are
// required. What the query does not say comes from base, the primary's config (the sender, the
// timeout, where status reports go), and the name is name unless the URL gives one.
func ParseSMSURL(raw string, base SMSConfig, name string) (SMSConfig, error) {
	u, err := parseProviderURL(raw, "http", "https")
	if err != nil {
		return SMSConfig{}, err
	}
	cfg := base
	cfg.Name, cfg.AccountSID, cfg.AuthToken = name, "", ""
	if u.User != nil {
		cfg.AccountSID = u.User.Username()
		cfg.AuthToken, _ = u.User.Password()
	}
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return SMSConfig{}, errors.New("want the account sid and auth token as the URL's user and password (https://SID:TOKEN@host)")
	}
	q := u.Query()
	if err := onlyKeys(q, "name", "from", "timeout"); err != nil {
		return SMSConfig{}, err
	}
	if v := q.Get("name"); v != "" {
		cfg.Name = v
	}
	if v := q.Get("from"); v != "" {
		cfg.From = v
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return SMSConfig{}, fmt.Errorf("timeout=%s is not a positive duration (e.g. 20s)", v)
		}
		cfg.Timeout = d
	}
	if !providerName.MatchString(cfg.Name) {
		return SMSConfig{}, fmt.Errorf("name=%s: want lower-case letters, digits, '.', '_' or '-', at most 63", cfg.Name)
	}
	gateway := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	cfg.URL = gateway.String()
	if _, err := NewHTTPSMS(cfg); err != nil {
		return SMSConfig{}, err
	}
	return cfg, nil
}

// parseProviderURL parses raw, which must have one of schemes and a host.
func parseProviderURL(raw string, schemes ...string) (*url.URL, error) {
	want := strings.Join(schemes, "://… or ") + "://…"
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Parse quotes the part it choked on, which may be a piece of the password.
		return nil, fmt.Errorf("not a URL (want %s; escape %% , / @ : in the password as %%25 %%2C %%2F %%40 %%3A)", want)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return nil, fmt.Errorf("scheme %q: want %s", u.Scheme, want)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if u.Fragment != "" {
		return nil, errors.New("a fragment (#…) means nothing here; escape # in a password as %23")
	}
	return u, nil
}

// onlyKeys refuses a query key not in keys, and one given twice.
func onlyKeys(q url.Values, keys ...string) error {
	for k, vs := range q {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("unknown parameter %q: want %s", k, strings.Join(keys, ", "))
		}
		if len(vs) > 1 {
			return fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}
