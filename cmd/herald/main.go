// Command herald is Herald, the event-sourced notification service, as one binary. Its
// subcommands:
//
//	serve          the HTTP API, the outbox relay and the reconciler
//	worker         the delivery workers, consuming email_notifications, sms_notifications and their priority lanes
//	projector      the projector, keeping notification_status and notification_history
//	all            all of the above in one process
//	migrate        apply the database migrations, or show their status
//	events         read the event log: list its events, replay notifications as of an instant,
//	               verify its hash chains and signed checkpoints
//	checkpoints    list the event log's signed checkpoints
//	verify-bundle  check an event's proof bundle offline, with the sealer's public key
//	keys           make the key that signs the checkpoints
//	notifications  show a notification's status and history as the API serves them
//	projections    show where the read models stand, rebuild them from the log
//	poison         inspect and re-drive the poison queue
//	apikeys        create, list and revoke API keys
//	webhooks       register webhook endpoints and deliver the log's events to them
//	suppressions   manage the suppression list: the recipients Herald does not send to
//	bench          measure Herald end to end against the machine's raw ceiling
//	version        print the version
//
// This package owns wiring and presentation only: it reads flags and HERALD_* environment
// variables (every setting is a flag with a variable behind it, defaulting to PostgreSQL and
// RabbitMQ on this machine), connects to the services, assembles the other packages into
// processes and runs them, and prints what the operator commands find — in one set of formats
// (output.go) with one rendering of errors (errors.go). What a notification or an event means
// lives in the packages it wires.
package main

import (
	"context"
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

// main runs the command line and turns an error into a message on stderr and exit status 1.
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

// rootCommand is the herald command with every subcommand: what the binary can do.
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
		notificationsCommand(),
		projectionsCommand(),
		apikeysCommand(),
		webhooksCommand(),
		bouncesCommand(),
		suppressionsCommand(),
		templatesCommand(),
		providersCommand(),
		keysCommand(),
		checkpointsCommand(),
		verifyBundleCommand(),
		versionCommand(),
		benchCommand(),
	)
	return root
}

// versionCommand prints which herald this is, for a bug report or a deployment check.
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
