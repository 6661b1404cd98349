// Command herald runs Herald, the event-sourced notification service: the API and outbox relay
// (serve), the delivery workers (worker), the read-model projector (projector), or all of them in
// one process (all); and applies its database migrations (migrate).
//
// Every setting is a flag with a HERALD_* environment variable behind it; the defaults point at
// PostgreSQL and RabbitMQ on this machine.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	root := rootCommand()
	err := execute(ctx, root)
	stop()
	if err != nil {
		// Drivers quote connection strings in their errors: mask every secret the settings hold.
		fmt.Fprintln(os.Stderr, "herald:", commandSecrets(root).Error(err))
		os.Exit(1)
	}
}

// execute runs root. A panic becomes an error, so that what it says is masked like any other
// error rather than printed by the runtime as it is.
func execute(ctx context.Context, root *cobra.Command) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return root.ExecuteContext(ctx)
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "herald",
		Short: "Herald accepts email and SMS notifications over HTTP and delivers them through RabbitMQ workers",
		Long: `Herald accepts email and SMS notifications over HTTP, delivers them through RabbitMQ
workers with retries and a poison queue, and records every state change in an append-only
PostgreSQL event log. Status and history are projections of that log.

Run "herald migrate" once, then "herald all" for everything in one process, or "herald serve",
"herald worker" and "herald projector" as separate processes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		serveCommand(),
		workerCommand(),
		projectorCommand(),
		allCommand(),
		migrateCommand(),
		poisonCommand(),
		eventsCommand(),
		projectionsCommand(),
		apikeysCommand(),
		versionCommand(),
		benchCommand(),
	)
	return root
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this herald",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			rev := ""
			if info, ok := debug.ReadBuildInfo(); ok {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " " + s.Value[:12]
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "herald %s%s %s %s/%s\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

// newSettings binds settings to cmd's flags and reports malformed environment variables before
// the command runs.
func newSettings(cmd *cobra.Command) *settings {
	s := &settings{fs: cmd.Flags()}
	cmd.PreRunE = func(*cobra.Command, []string) error { return errors.Join(s.errs...) }
	return s
}
