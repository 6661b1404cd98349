package main

import (
	"errors"
	"fmt"

	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/ratelimit"
)

// rateConfig is the providers' rate limits, held across every worker process together.
type rateConfig struct {
	SMTP string
	SMS  string
}

// register binds the rate limits to the command's flags.
func (c *rateConfig) register(s *settings) {
	s.String(&c.SMTP, "smtp-rate", "HERALD_SMTP_RATE", "", "most emails the SMTP provider takes, from all workers together: N/s, N/m or N/h (e.g. 100/s); empty: no limit")
	s.String(&c.SMS, "sms-rate", "HERALD_SMS_RATE", "", "most SMS the SMS gateway takes, from all workers together: N/s, N/m or N/h (e.g. 20/s); empty: no limit")
}

// validate checks the rates before anything connects, naming the flags at fault.
func (c rateConfig) validate() error {
	var errs []error
	if _, err := ratelimit.ParseRate(c.SMTP); err != nil {
		errs = append(errs, fmt.Errorf("--smtp-rate: %w", err))
	}
	if _, err := ratelimit.ParseRate(c.SMS); err != nil {
		errs = append(errs, fmt.Errorf("--sms-rate: %w", err))
	}
	return errors.Join(errs...)
}

// rates returns the limits by provider name, the key the limiter knows providers by; nil when
// no provider is limited.
func (c rateConfig) rates() map[string]ratelimit.Rate {
	out := map[string]ratelimit.Rate{}
	if r, _ := ratelimit.ParseRate(c.SMTP); !r.Unlimited() {
		out[delivery.SMTPName] = r
	}
	if r, _ := ratelimit.ParseRate(c.SMS); !r.Unlimited() {
		out[delivery.HTTPSMSName] = r
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
