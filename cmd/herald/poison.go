package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/handlers"
	"github.com/herald-notify/herald/router"
)

// poisonCommand groups the operators' commands on the poison queue: look at what the workers
// gave up on, and send it back or give up on it for good.
func poisonCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "poison",
		Short: "Inspect and re-drive the poison queue",
		Long: `poison works the commands the workers parked in the poison_notifications queue: those of
notifications that failed for good (a permanent error, or their attempts ran out).

  herald poison list                     what is parked, with each notification's state
  herald poison show ID                  one notification's parked message and whole history
  herald poison requeue ID...|--all      send them back to their work queue for a new round of attempts
  herald poison discard ID...|--all --reason TEXT
                                         give up on them; they stay failed

IDs are notification ids. Every requeue and discard is an event in the notification's stream
saying who did it (--actor, by default your OS user name) and why (--reason); status and history
show it. Each command exits with status 0 only when it did everything asked; -o json prints
for scripts.

Looking at the queue takes its messages for a moment and hands them straight back, so its depth
stays true. One look runs at a time, across every process: a command started while another
looks says so and waits for it (Ctrl-C gives up). poison_notifications is a classic queue, so looking is not counted against any
delivery limit; the work queues dead-letter into it the commands RabbitMQ gives up on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(poisonListCommand(), poisonShowCommand(), poisonActionCommand(actionRequeue), poisonActionCommand(actionDiscard))
	return cmd
}

// poisonConfig is what every poison subcommand needs: the database, RabbitMQ, and -o.
type poisonConfig struct {
	cli     cliDB
	amqpURL string
	output  *format
}

// register binds the settings and -o to the command's flags.
func (c *poisonConfig) register(s *settings) {
	c.cli.register(s)
	registerAMQPURL(s, &c.amqpURL)
	c.output = registerFormat(s.fs, formatTable, formatJSON)
}

// validate checks the settings without connecting anywhere.
func (c *poisonConfig) validate() error {
	var errs []error
	if err := router.ValidateAMQPURL(c.amqpURL); err != nil {
		errs = append(errs, fmt.Errorf("--amqp-url: %w", err))
	}
	if _, err := c.cli.logs.logger(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// operator connects to PostgreSQL (which must be at the current schema) and returns the
// operator, and what closes it.
func (c *poisonConfig) operator(ctx context.Context) (*handlers.Operator, func(), error) {
	pool, logger, err := c.cli.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	// No relay runs in this process to wake: a serve process's relay polls the commands.
	return newOperator(pool, events.NewLog(pool), router.NewOutbox(nil), c.amqpURL, logger), pool.Close, nil
}

// newOperator wires the operator's actions on the poison queue at amqpURL, requeueing through
// outbox: the one wiring for the poison commands and the API's poison endpoints alike.
func newOperator(pool *pgxpool.Pool, log *events.Log, outbox *router.Outbox, amqpURL string, logger *slog.Logger) *handlers.Operator {
	return handlers.NewOperator(pool, log, outbox, router.NewPoisonQueue(amqpURL, logger))
}

// channelFilter is the --type flag that narrows the poison commands to one channel, named as in a
// notification and in the API's ?type=; --channel is its deprecated name, still understood.
type channelFilter struct {
	typ, channel string
}

// register defines --type, and --channel as its deprecated, hidden alias, on fs.
func (f *channelFilter) register(fs *pflag.FlagSet, usage string) {
	fs.StringVar(&f.typ, "type", "", usage)
	fs.StringVar(&f.channel, "channel", "", usage)
	if err := fs.MarkDeprecated("channel", "use --type"); err != nil {
		panic(err) // a flag that was never defined: a bug in the command
	}
	markArguments(fs, "type", "channel")
}

// given reports whether either name of the flag was given.
func (f *channelFilter) given() bool { return f.typ != "" || f.channel != "" }

// parse returns the channel asked for: empty for every channel.
func (f *channelFilter) parse() (herald.Channel, error) {
	var out herald.Channel
	for _, g := range []struct{ flag, value string }{{"--type", f.typ}, {"--channel", f.channel}} {
		if g.value == "" {
			continue
		}
		c, err := herald.ParseChannel(g.value)
		if err != nil {
			return "", fmt.Errorf("%s: %s", g.flag, herald.ErrorMessage(err))
		}
		if out != "" && c != out {
			return "", fmt.Errorf("--channel is %s, but --type is %s: give one (--channel is the deprecated name of --type)", c, out)
		}
		out = c
	}
	return out, nil
}

// poisonActor returns actor, or when it is empty the OS user's name.
func poisonActor(actor string) (string, error) {
	if strings.TrimSpace(actor) != "" {
		return actor, nil
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if name := os.Getenv("USER"); name != "" {
		return name, nil
	}
	return "", errors.New("--actor: cannot tell who you are from the OS; say who is acting with --actor")
}
