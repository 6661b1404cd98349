package main

import "github.com/spf13/cobra"

// webhooksCommand groups the commands that manage webhook endpoints and deliver to them.
func webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Register webhook endpoints and deliver the log's events to them",
		Long: `A webhook endpoint is a URL of a client's that receives, signed per the Standard Webhooks
specification, the events of the log it subscribed to: each notification's NotificationQueued,
NotificationSent, NotificationFailed, … as they happen. Each endpoint reads the log as a consumer of
its own, so it can be replayed from any point.`,
	}
	cmd.AddCommand(webhooksServeCommand())
	return cmd
}
