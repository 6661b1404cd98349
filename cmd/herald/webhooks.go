package main

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/webhooks"
)

// webhooksCommand groups the commands that manage webhook endpoints and deliver to them.
func webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Register webhook endpoints and deliver the log's events to them",
		Long: `A webhook endpoint is a URL of a client's that receives, signed per the Standard Webhooks
specification, the events of the log it subscribed to: each notification's NotificationQueued,
NotificationSent, NotificationFailed, … as they happen. Each endpoint reads the log as a consumer of
its own, so it can be replayed from any point.

  herald webhooks create --url URL [--events TYPES|all]   register one; prints its secret, once
  herald webhooks list | show ID                           what is registered, and one in full
  herald webhooks update ID | disable ID | enable ID | delete ID
  herald webhooks rotate-secret ID                         a new secret; the old one signs for 24h more
  herald webhooks deliveries ID [--failed]                 the requests made to it, and their answers
  herald webhooks replay ID --from-position P | --since TIME
                                                           send past events again
  herald webhooks serve                                    run the delivery

Every change of an endpoint is an event of its stream in the log, with who made it (--actor, by
default your OS user name): show lists them. A secret is printed only by create and rotate-secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(webhooksCreateCommand(), webhooksListCommand(), webhooksShowCommand(), webhooksUpdateCommand(),
		webhooksDisableCommand(), webhooksEnableCommand(), webhooksDeleteCommand(), webhooksRotateCommand(),
		webhooksDeliveriesCommand(), webhooksReplayCommand(), webhooksServeCommand())
	return cmd
}

// endpointOptions says what an endpoint subcommand takes besides the database settings.
type endpointOptions struct {
	// policy registers the settings that say which URLs an endpoint may have, for the commands
	// that set one.
	policy bool
	// acts adds --actor, for the commands that change an endpoint.
	acts bool
	// formats are -o's choices, the first the default; none: no -o.
	formats []format
}

// endpointRun is what an endpoint subcommand does with the store, who acts, and the format.
type endpointRun func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, output format) error

// endpointCommand builds a webhooks subcommand that works on the endpoints' store: database and
// log settings, and as opts says the URL policy, --actor and -o.
func endpointCommand(use, short string, args cobra.PositionalArgs, opts endpointOptions, run endpointRun) *cobra.Command {
	var (
		cli    cliDB
		policy webhookPolicyConfig
		actor  string
		output = new(format)
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if opts.acts {
				var err error
				if actor, err = poisonActor(actor); err != nil {
					return err
				}
				// The operator's invocation is what causes the events it appends.
				ctx = herald.WithCorrelationID(ctx, "cli-"+uuid.NewString())
			}
			pool, _, err := cli.connect(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			return run(ctx, cmd, args, webhooks.NewEndpoints(pool, policy.policy()), actor, *output)
		},
	}
	s := newSettings(cmd)
	cli.register(s)
	if opts.policy {
		policy.register(s)
	}
	if opts.acts {
		cmd.Flags().StringVar(&actor, "actor", "", "who makes the change, for the record; empty: your OS user name")
		markArguments(cmd.Flags(), "actor")
	}
	if len(opts.formats) > 0 {
		output = registerFormat(cmd.Flags(), opts.formats...)
	}
	return cmd
}

// endpointError is what a person reads of an error of the endpoints' store: an invalid input
// names the flags to fix; anything else says what happened, with the fields it concerns.
func endpointError(err error) error {
	if herald.ErrorCode(err) == herald.EINVALID && len(herald.ErrorFields(err)) > 0 {
		return cliError(err, fieldsAsFlags)
	}
	return cliError(err, fieldsAsWords)
}

// errNothingToChange is update's answer to a command line that changes nothing.
var errNothingToChange = errors.New("nothing to change: give --url, --events or --description")
