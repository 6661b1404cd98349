package main

import "github.com/spf13/cobra"

func eventsCommand() *cobra.Command {
	return &cobra.Command{Use: "events", Short: "Read the event log", Hidden: true}
}
