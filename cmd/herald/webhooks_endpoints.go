package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/webhooks"
)

// This file is the commands that register, change and remove webhook endpoints. Each change is
// recorded by the store as an event of the endpoint's stream, with the actor.

// changeOptions are those of the commands that change one endpoint and print it.
var changeOptions = endpointOptions{acts: true, formats: []format{formatTable, formatJSON}}

// webhooksCreateCommand registers an endpoint and prints its secret, the one time it is shown.
func webhooksCreateCommand() *cobra.Command {
	var url, types, description string
	opts := changeOptions
	opts.policy = true
	cmd := endpointCommand("create --url URL [--events TYPES|all]", "Register a webhook endpoint and print its signing secret, once", cobra.NoArgs, opts,
		func(ctx context.Context, cmd *cobra.Command, _ []string, store *webhooks.Endpoints, actor string, output format) error {
			events, err := webhooks.ParseEventTypes(types, "events")
			if err != nil {
				return endpointError(err)
			}
			e, secret, err := store.Create(ctx, webhooks.NewEndpoint{URL: url, Description: description, EventTypes: events}, actor)
			if err != nil {
				return endpointError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, webhooks.WireEndpointCreated(e, secret))
			}
			fmt.Fprintf(w, "Created webhook endpoint %s for %s, receiving %s.\n", e.ID, cell(e.URL, 0), eventsWords(e.EventTypes))
			fmt.Fprintf(w, "Its signing secret; store it now, it will not be shown again:\n\n%s\n", secret.Reveal())
			return nil
		})
	cmd.Long = `create registers a webhook endpoint: from now on, the events of the types it takes (--events,
all of them by default, including types added later) are posted to its URL, signed with its
secret. The secret is printed this once: the receiver needs it to check the signatures.
With checkpoint.signed among --events, each signed checkpoint the sealer writes from now on is
posted too, in seq order (never through "all": name it).

The URL must be https and reach a public address, unless --webhook-allow-http and
--webhook-allow-private say otherwise (development and tests only). One endpoint per URL.`
	fs := cmd.Flags()
	fs.StringVar(&url, "url", "", "where the events are posted")
	fs.StringVar(&types, "events", "all", "the notification event types posted, comma-separated, or all; add checkpoint.signed for the log's signed checkpoints (never part of all)")
	fs.StringVar(&description, "description", "", "what the endpoint is for, in words")
	markArguments(fs, "url", "events", "description")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

// webhooksListCommand lists the endpoints, never their secrets.
func webhooksListCommand() *cobra.Command {
	return endpointCommand("list", "List the webhook endpoints (never their secrets)", cobra.NoArgs,
		endpointOptions{formats: []format{formatTable, formatJSON}},
		func(ctx context.Context, cmd *cobra.Command, _ []string, store *webhooks.Endpoints, _ string, output format) error {
			list, err := store.List(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, webhooks.WireEndpointList(list))
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "ID\tURL\tEVENTS\tENABLED\tFAILING SINCE\tLAST SUCCESS\tPOSITION\tDESCRIPTION")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, cell(e.URL, 60), cell(eventsWords(e.EventTypes), 40),
					enabledWords(e), timeOrDash(e.FailingSince), timeOrDash(e.LastSuccessAt), e.Position, orDash(cell(e.Description, 40)))
			}
			return tw.Flush()
		})
}

// webhooksUpdateCommand changes an endpoint's URL, event types or description.
func webhooksUpdateCommand() *cobra.Command {
	var url, types, description string
	opts := changeOptions
	opts.policy = true
	cmd := endpointCommand("update ID [--url URL] [--events TYPES|all] [--description TEXT]", "Change a webhook endpoint's URL, event types or description",
		cobra.ExactArgs(1), opts,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, output format) error {
			var c webhooks.Change
			fs := cmd.Flags()
			if fs.Changed("url") {
				c.URL = &url
			}
			if fs.Changed("description") {
				c.Description = &description
			}
			if fs.Changed("events") {
				events, err := webhooks.ParseEventTypes(types, "events")
				if err != nil {
					return endpointError(err)
				}
				c.EventTypes = &events
			}
			if c == (webhooks.Change{}) {
				return errNothingToChange
			}
			e, err := store.Update(ctx, args[0], c, actor)
			if err != nil {
				return endpointError(err)
			}
			return printEndpoint(cmd.OutOrStdout(), output, "Updated", e)
		})
	fs := cmd.Flags()
	fs.StringVar(&url, "url", "", "the new URL")
	fs.StringVar(&types, "events", "", "the notification event types posted, comma-separated, or all; add checkpoint.signed for the log's signed checkpoints (never part of all)")
	fs.StringVar(&description, "description", "", "the new description (empty clears it)")
	markArguments(fs, "url", "events", "description")
	return cmd
}

// webhooksDisableCommand stops delivery to an endpoint, keeping its place in the log.
func webhooksDisableCommand() *cobra.Command {
	var reason string
	cmd := endpointCommand("disable ID [--reason TEXT]", "Stop delivering to a webhook endpoint; enable resumes where it stopped",
		cobra.ExactArgs(1), changeOptions,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, output format) error {
			e, err := store.Disable(ctx, args[0], actor, reason)
			if err != nil {
				return endpointError(err)
			}
			return printEndpoint(cmd.OutOrStdout(), output, "Disabled", e)
		})
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	markArguments(cmd.Flags(), "reason")
	return cmd
}

// webhooksEnableCommand resumes delivery to a disabled endpoint.
func webhooksEnableCommand() *cobra.Command {
	return endpointCommand("enable ID", "Resume delivering to a disabled webhook endpoint, from where it stopped",
		cobra.ExactArgs(1), changeOptions,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, output format) error {
			e, err := store.Enable(ctx, args[0], actor)
			if err != nil {
				return endpointError(err)
			}
			return printEndpoint(cmd.OutOrStdout(), output, "Enabled", e)
		})
}

// webhooksDeleteCommand removes an endpoint; its deliveries and its stream are kept.
func webhooksDeleteCommand() *cobra.Command {
	opts := changeOptions
	opts.formats = nil
	return endpointCommand("delete ID", "Delete a webhook endpoint: nothing is posted to it again", cobra.ExactArgs(1), opts,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, _ format) error {
			if err := store.Delete(ctx, args[0], actor); err != nil {
				return endpointError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted webhook endpoint %s; its pending retries are dropped, its deliveries and history kept.\n", args[0])
			return nil
		})
}

// webhooksRotateCommand gives an endpoint a new secret and prints it, the one time it is shown.
func webhooksRotateCommand() *cobra.Command {
	return endpointCommand("rotate-secret ID", "Give a webhook endpoint a new signing secret and print it, once", cobra.ExactArgs(1), changeOptions,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *webhooks.Endpoints, actor string, output format) error {
			e, secret, err := store.RotateSecret(ctx, args[0], actor)
			if err != nil {
				return endpointError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, webhooks.WireEndpointCreated(e, secret))
			}
			fmt.Fprintf(w, "Rotated the signing secret of webhook endpoint %s.\n", e.ID)
			if e.PreviousSecretUntil != nil {
				fmt.Fprintf(w, "Requests carry a signature by the old secret too until %s.\n", tableTime(*e.PreviousSecretUntil))
			}
			fmt.Fprintf(w, "The new secret; store it now, it will not be shown again:\n\n%s\n", secret.Reveal())
			return nil
		})
}

// printEndpoint prints e after a change done (a past participle: "Updated"), as a table or JSON.
func printEndpoint(w io.Writer, output format, done string, e webhooks.Endpoint) error {
	if output == formatJSON {
		return writeJSON(w, webhooks.WireEndpoint(e, nil))
	}
	fmt.Fprintf(w, "%s webhook endpoint %s (version %d).\n\n", done, e.ID, e.Version)
	return writeEndpointFields(w, e, nil)
}

// eventsWords says which event types an endpoint takes: "all" or the list.
func eventsWords(types []string) string {
	if len(types) == 0 {
		return "all event types"
	}
	return strings.Join(types, ", ")
}
