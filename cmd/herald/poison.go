package main

import "github.com/spf13/cobra"

func poisonCommand() *cobra.Command {
	return &cobra.Command{Use: "poison", Short: "Inspect and re-drive the poison queue", Hidden: true}
}
