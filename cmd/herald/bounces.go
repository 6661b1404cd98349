package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/herald-notify/herald/bounces"
)

// bouncesCommand groups the bounce listener and the commands that read what it received.
func bouncesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bounces",
		Short: "Receive bounces and complaints, and read the reports that arrived",
		Long: `With --bounce-domain set, every email's return path (MAIL FROM) is bounces+ID@DOMAIN, so the
delivery status notifications (RFC 3464) that mail servers send back, and the feedback reports
(RFC 5965) of the feedback loops pointed at the domain, name their notification. The bounce
listener takes them over SMTP, keeps each as it arrived, and records a hard or soft bounce
(NotificationBounced) or a complaint (NotificationComplained) on the notification's stream.

  herald bounces serve                                      run the listener (herald all runs it too)
  herald bounces list [--outcome X] [--limit N] [-o json]   what arrived, newest first
  herald bounces show ID                                    one report as it arrived, and its outcome`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(bouncesServeCommand(), bouncesListCommand(), bouncesShowCommand())
	return cmd
}

// bouncesServeCommand runs the bounce listener alone.
func bouncesServeCommand() *cobra.Command {
	return processCommand("serve", "Run the bounce listener: the SMTP server of the bounce domain",
		`serve runs the bounce listener: an SMTP server that accepts mail for --bounce-domain only (any
other recipient is refused with 550 5.7.1), up to --bounce-max-size, keeps every message in
inbound_reports for --bounce-retention, and records what the delivery status notifications and
feedback reports say on the notifications' streams. Mail that is no report, or names no
notification, is kept and answered 250 all the same. Any number may run behind the domain's MX.`,
		parts{bounces: true})
}

// bouncesListCommand lists the reports that arrived, newest first.
func bouncesListCommand() *cobra.Command {
	var (
		cli    cliDB
		filter bounces.Filter
		output *format
	)
	cmd := &cobra.Command{
		Use:   "list [--outcome OUTCOME] [--limit N] [--before ID]",
		Short: "List the mail the bounce listener received, newest first",
		Long: `list shows the mail the bounce listener received, newest first: when, from where, the
envelope, the outcome (hard_bounce, soft_bounce, complaint, duplicate, ignored, unmatched,
unparsable, failed) and the notification it concerned. A page holds --limit of them; the next
page is --before the last one's id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if filter.Limit < 1 {
				// The store reads 0 as its default; on the command line the default is written.
				return fmt.Errorf("--limit %d: want 1 to %d", filter.Limit, bounces.MaxListPage)
			}
			if err := filter.Validate(); err != nil {
				return cliError(err, fieldsAsFlags)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			list, next, err := bounces.NewStore(pool).List(cmd.Context(), filter)
			if err != nil {
				return cliError(err, fieldsAsFlags)
			}
			return writeReports(cmd.OutOrStdout(), *output, list, next)
		},
	}
	cli.register(newSettings(cmd))
	fs := cmd.Flags()
	fs.StringVar(&filter.Outcome, "outcome", "", "only the reports of this outcome: "+strings.Join(bounces.Outcomes, ", "))
	fs.IntVar(&filter.Limit, "limit", 100, "the most reports listed, 1 to "+strconv.Itoa(bounces.MaxListPage))
	fs.Int64Var(&filter.Before, "before", 0, "list the reports older than the one with this id: the next page")
	markArguments(fs, "outcome", "limit", "before")
	output = registerFormat(fs, formatTable, formatJSON, formatJSONL)
	return cmd
}

// writeReports prints a page of reports, continued before next (0: the last).
func writeReports(w io.Writer, output format, list []bounces.Inbound, next int64) error {
	switch output {
	case formatJSON:
		return writeJSON(w, bounces.WireReports(list, next))
	case formatJSONL:
		for _, r := range list {
			if err := writeJSONLine(w, bounces.WireReport(r, false)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "No reports.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tTO\tSIZE\tOUTCOME\tNOTIFICATION\tDETAIL")
	for _, r := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, tableTime(r.ReceivedAt), cell(orDash(r.RemoteAddr), 40),
			cell(orDash(strings.Join(r.EnvelopeTo, ",")), 60), r.Size, r.Outcome, orDash(r.NotificationID), cell(orDash(r.Detail), 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next > 0 {
		_, err := fmt.Fprintf(w, "\nMore: herald bounces list --before %d\n", next)
		return err
	}
	return nil
}

// bouncesShowCommand prints one report as it arrived, and what became of it.
func bouncesShowCommand() *cobra.Command {
	var (
		cli    cliDB
		output *format
	)
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print one received report as it arrived, and its outcome",
		Long: `show prints a report the bounce listener received: how it arrived (from where, the envelope,
its size), its outcome and the notification it concerned, then the message itself as kept (its
first 256 KiB; it says when there was more). Control characters other than line breaks and tabs
are shown as '?', so that a report cannot drive the terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := bounces.ParseReportID(args[0])
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			pool, _, err := cli.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			r, err := bounces.NewStore(pool).Get(cmd.Context(), id)
			if err != nil {
				return cliError(err, fieldsAsWords)
			}
			return writeReport(cmd.OutOrStdout(), *output, r)
		},
	}
	cli.register(newSettings(cmd))
	output = registerFormat(cmd.Flags(), formatTable, formatJSON)
	return cmd
}

// writeReport prints report r whole.
func writeReport(w io.Writer, output format, r bounces.Inbound) error {
	if output == formatJSON {
		return writeJSON(w, bounces.WireReport(r, true))
	}
	p := &printer{w: w}
	p.printf("Report %d\n", r.ID)
	p.printf("  received:      %s from %s\n", tableTime(r.ReceivedAt), orDash(r.RemoteAddr))
	p.printf("  envelope:      from <%s> to %s\n", cell(r.EnvelopeFrom, 0), cell(orDash(strings.Join(r.EnvelopeTo, ", ")), 0))
	p.printf("  message id:    %s\n", cell(orDash(r.MessageID), 0))
	p.printf("  outcome:       %s\n", r.Outcome)
	p.printf("  notification:  %s\n", orDash(r.NotificationID))
	p.printf("  detail:        %s\n", cell(orDash(r.Detail), 0))
	kept := fmt.Sprintf("%d bytes", r.Size)
	if r.Truncated {
		kept = fmt.Sprintf("%d bytes, the first %d kept", r.Size, len(r.Raw))
	}
	p.printf("  size:          %s\n\n", kept)
	p.printf("%s", printable(string(r.Raw)))
	if len(r.Raw) > 0 && r.Raw[len(r.Raw)-1] != '\n' {
		p.printf("\n")
	}
	if r.Truncated {
		p.printf("[truncated]\n")
	}
	return p.err
}

// printable keeps s's line breaks and tabs and shows its other control characters as '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' {
			return -1
		}
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
