package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/herald-notify/herald/bounces"
)

// bounceConfig is the bounce domain, which the workers put in each email's return path, and the
// listener that receives what comes back to it.
type bounceConfig struct {
	Domain    string
	Addr      string
	MaxSize   int
	Retention time.Duration
}

// registerDomain binds --bounce-domain, which the workers and the listener share.
func (c *bounceConfig) registerDomain(s *settings) {
	s.String(&c.Domain, "bounce-domain", "HERALD_BOUNCE_DOMAIN", "", "domain of the emails' return path (bounces+ID@DOMAIN), where bounces and complaints come back; empty: the return path is the sender's address, and no listener runs")
}

// registerListener binds the listener's own settings.
func (c *bounceConfig) registerListener(s *settings) {
	s.String(&c.Addr, "bounce-addr", "HERALD_BOUNCE_ADDR", "127.0.0.1:2525", "address the bounce listener takes SMTP on; put the bounce domain's MX (or a relay) in front of it")
	s.Int(&c.MaxSize, "bounce-max-size", "HERALD_BOUNCE_MAX_SIZE", bounces.DefaultMaxMessageBytes, "largest message the bounce listener accepts, in bytes (552 beyond)")
	s.Duration(&c.Retention, "bounce-retention", "HERALD_BOUNCE_RETENTION", bounces.DefaultRetention, "how long received reports are kept")
}

// validateDomain checks --bounce-domain; required says a listener must run.
func (c bounceConfig) validateDomain(required bool) error {
	switch {
	case c.Domain == "" && required:
		return errors.New("--bounce-domain: required: the listener accepts mail for that domain only")
	case c.Domain != "" && (strings.ContainsAny(c.Domain, " @<>,;") || !strings.Contains(c.Domain, ".") && c.Domain != "localhost"):
		return fmt.Errorf("--bounce-domain %q: want a domain name, like bounces.example.com", c.Domain)
	}
	return nil
}

// validateListener checks the listener's settings.
func (c bounceConfig) validateListener() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--bounce-addr %q: want host:port", c.Addr))
	}
	if c.MaxSize < 1024 {
		errs = append(errs, fmt.Errorf("--bounce-max-size %d: want at least 1024 bytes", c.MaxSize))
	}
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("--bounce-retention %s: want more than 0", c.Retention))
	}
	return errors.Join(errs...)
}
