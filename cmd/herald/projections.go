package main

import "github.com/spf13/cobra"

func projectionsCommand() *cobra.Command {
	return &cobra.Command{Use: "projections", Short: "Inspect and rebuild the read models", Hidden: true}
}
