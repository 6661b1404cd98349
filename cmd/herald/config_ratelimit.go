package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/delivery"
	"github.com/herald-notify/herald/ratelimit"
)

// rateConfig is the providers' rate limits, held across every worker process together.
type rateConfig struct {
	SMTP    string
	SMS     string
	MaxWait time.Duration
}

// maxRateWait is the most --rate-limit-max-wait may be: well under RabbitMQ's default consumer
// timeout (30 minutes), past which the broker closes the channel of a consumer that holds a
// message unacknowledged, with room for the attempt that follows the wait.
const maxRateWait = 15 * time.Minute

// register binds the rate limits to the command's flags.
func (c *rateConfig) register(s *settings) {
	s.String(&c.SMTP, "smtp-rate", "HERALD_SMTP_RATE", "", "most email attempts, from all workers together, whichever relay (primary or failover) sends them: N/s, N/m or N/h (e.g. 100/s); empty: no limit")
	s.String(&c.SMS, "sms-rate", "HERALD_SMS_RATE", "", "most SMS attempts, from all workers together, whichever gateway (primary or failover) sends them: N/s, N/m or N/h (e.g. 20/s); empty: no limit")
	s.Duration(&c.MaxWait, "rate-limit-max-wait", "HERALD_RATE_LIMIT_MAX_WAIT", 5*time.Minute, "longest a send waits for its provider's rate; then its command goes back to its queue, no attempt spent (at most 15m, under RabbitMQ's consumer timeout)")
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
	if c.MaxWait < time.Second || c.MaxWait > maxRateWait {
		errs = append(errs, fmt.Errorf("--rate-limit-max-wait %s: want 1s to %s, under RabbitMQ's consumer timeout (30m by default)", c.MaxWait, maxRateWait))
	}
	return errors.Join(errs...)
}

// ignored returns, for each rate set for a channel of providers whose provider is not the one the
// rate limits (the log provider), the setting at fault and the provider that delivers instead:
// such a rate holds nothing.
func (c rateConfig) ignored(providers map[herald.Channel]delivery.Provider) (settings, names []string) {
	for _, r := range []struct {
		value, setting, name string
		channel              herald.Channel
	}{
		{c.SMTP, "HERALD_SMTP_RATE", delivery.SMTPName, herald.ChannelEmail},
		{c.SMS, "HERALD_SMS_RATE", delivery.HTTPSMSName, herald.ChannelSMS},
	} {
		p, ok := providers[r.channel]
		if rate, _ := ratelimit.ParseRate(r.value); rate.Unlimited() || !ok || p.Name() == r.name {
			continue
		}
		settings, names = append(settings, r.setting), append(names, p.Name())
	}
	return settings, names
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
