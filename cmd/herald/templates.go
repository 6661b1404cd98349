package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
	"github.com/herald-notify/herald/wire"
)

// templatesCommand groups the operators' commands on the stored templates.
func templatesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "Manage stored templates: named, versioned email and SMS templates",
		Long: `A stored template is a named email or SMS template — subject, text content, HTML part, and
the variables they use, with defaults — kept as immutable versions 1, 2, …: every create or update
saves the whole template as a new version, and NAME@N names version N.

  herald templates create NAME --channel C [--subject S] [--content-file F] [--html-file F] [--var V[=DEFAULT]]...
  herald templates update NAME [--subject S] [--content-file F] [--html-file F] [--var V[=DEFAULT]]...
  herald templates list [--channel C] [--archived | --all]
  herald templates show NAME[@N]                 the latest version (or version N) and the history
  herald templates versions NAME                 every version
  herald templates archive NAME --reason TEXT    refuse new sends and versions by this name
  herald templates restore NAME --reason TEXT

Each part is checked when it is saved, as a send checks it, and every variable a part uses must
be declared with --var. Every change is an event of the template's stream in the log, with who
made it (--actor, by default your OS user name). The API serves the same under /api/v1/templates.
Sending a notification by a template's name is not available yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(templatesCreateCommand(), templatesUpdateCommand(), templatesListCommand(), templatesShowCommand(),
		templatesVersionsCommand(), templatesArchiveCommand(true), templatesArchiveCommand(false))
	return cmd
}

// templateRun is what a templates subcommand does with the store, who acts, and the format.
type templateRun func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, actor string, output format) error

// templateCommand builds a templates subcommand that works on the store: database and log
// settings, -o, and with acts --actor. check, when given, checks the command line before
// anything connects.
func templateCommand(use, short string, args cobra.PositionalArgs, acts bool, check func(args []string) error, run templateRun) *cobra.Command {
	var (
		cli   cliDB
		actor string
	)
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	output := registerFormat(cmd.Flags(), formatTable, formatJSON)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if check != nil {
			if err := check(args); err != nil {
				return err
			}
		}
		ctx := cmd.Context()
		if acts {
			var err error
			if actor, err = poisonActor(actor); err != nil {
				return err
			}
			ctx = herald.WithCorrelationID(ctx, "cli-"+uuid.NewString())
		}
		pool, _, err := cli.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		return run(ctx, cmd, args, templatestore.New(pool), actor, *output)
	}
	cli.register(newSettings(cmd))
	if acts {
		cmd.Flags().StringVar(&actor, "actor", "", "who makes the change, for the record; empty: your OS user name")
		markArguments(cmd.Flags(), "actor")
	}
	return cmd
}

// templateError is what a person reads of an error of the store: an invalid input names what
// to fix — NAME as the argument, the parts as their flags, a variable as its --var.
func templateError(err error) error {
	var he *herald.Error
	if !errors.As(err, &he) || he.Code != herald.EINVALID || len(he.Fields) == 0 {
		return cliError(err, fieldsAsWords)
	}
	var msgs []string
	for _, k := range slices.Sorted(maps.Keys(he.Fields)) {
		var name string
		switch {
		case k == "name" || k == "template":
			name = "NAME"
		case k == "content":
			name = "--content-file"
		case k == "html":
			name = "--html-file"
		case strings.HasPrefix(k, "variables."):
			name = "--var " + strings.TrimPrefix(k, "variables.")
		case strings.HasPrefix(k, "variables"):
			name = "--var"
		default:
			name = "--" + strings.ReplaceAll(k, "_", "-")
		}
		msgs = append(msgs, name+": "+he.Fields[k])
	}
	return errors.New(strings.Join(msgs, "; "))
}

// templateFlags are the flags that write a template's parts.
type templateFlags struct {
	channel, subject, content, contentFile, htmlFile, description string
	vars                                                          []string
}

func (f *templateFlags) register(fs *pflag.FlagSet, create bool) {
	if create {
		fs.StringVar(&f.channel, "channel", "", "email or sms (required)")
		markArguments(fs, "channel")
	}
	fs.StringVar(&f.subject, "subject", "", "the email's subject, a template")
	fs.StringVar(&f.content, "content", "", "the text content, a template, given inline")
	fs.StringVar(&f.contentFile, "content-file", "", "read the text content, a template, from this file (- for standard input)")
	fs.StringVar(&f.htmlFile, "html-file", "", "read the email's HTML part, a template, from this file (- for standard input)")
	fs.StringArrayVar(&f.vars, "var", nil, "declare a variable the parts use, NAME or NAME=DEFAULT; repeat for each")
	fs.StringVar(&f.description, "description", "", "what the template is for")
	markArguments(fs, "subject", "content", "content-file", "html-file", "var", "description")
}

// check checks what can be checked before connecting.
func (f *templateFlags) check(cmd *cobra.Command) error {
	var errs []error
	if cmd.Flags().Changed("content") && cmd.Flags().Changed("content-file") {
		errs = append(errs, errors.New("--content, --content-file: give the content one way, not both"))
	}
	if f.contentFile == "-" && f.htmlFile == "-" {
		errs = append(errs, errors.New("--content-file, --html-file: only one can read standard input"))
	}
	if _, err := parseVars(f.vars); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// apply writes the parts the flags give onto d.
func (f *templateFlags) apply(cmd *cobra.Command, d *templatestore.Draft) error {
	fs := cmd.Flags()
	if fs.Changed("subject") {
		d.Subject = f.subject
	}
	if fs.Changed("content") {
		d.Content = f.content
	}
	if fs.Changed("content-file") {
		b, err := readFileArg(cmd, f.contentFile)
		if err != nil {
			return fmt.Errorf("--content-file: %w", err)
		}
		d.Content = string(b)
	}
	if fs.Changed("html-file") {
		b, err := readFileArg(cmd, f.htmlFile)
		if err != nil {
			return fmt.Errorf("--html-file: %w", err)
		}
		d.HTML = string(b)
	}
	if fs.Changed("var") {
		d.Variables, _ = parseVars(f.vars) // checked before connecting
	}
	if fs.Changed("description") {
		d.Description = f.description
	}
	return nil
}

// readFileArg reads a part from path, or from standard input for "-". A part is a template of
// at most templatestore.MaxPartBytes: reading stops just past that, and the store names it.
func readFileArg(cmd *cobra.Command, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, templatestore.MaxPartBytes+1))
}

// parseVars reads --var NAME or NAME=DEFAULT.
func parseVars(vars []string) ([]events.TemplateVariable, error) {
	out := make([]events.TemplateVariable, 0, len(vars))
	for _, v := range vars {
		name, def, hasDefault := strings.Cut(v, "=")
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("--var %q: give NAME or NAME=DEFAULT", v)
		}
		tv := events.TemplateVariable{Name: name}
		if hasDefault {
			tv.Default = &def
		}
		out = append(out, tv)
	}
	return out, nil
}

// templatesCreateCommand saves version 1 of a new template.
func templatesCreateCommand() *cobra.Command {
	var f templateFlags
	var cmd *cobra.Command
	cmd = templateCommand("create NAME --channel C [--subject S] [--content-file F] [--html-file F] [--var V[=DEFAULT]]...",
		"Create a template: its version 1", cobra.ExactArgs(1), true,
		func([]string) error { return f.check(cmd) },
		func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, actor string, output format) error {
			d := templatestore.Draft{Channel: herald.Channel(f.channel)}
			if err := f.apply(cmd, &d); err != nil {
				return err
			}
			t, err := store.Create(ctx, args[0], d, actor)
			if err != nil {
				return templateError(err)
			}
			return printTemplate(cmd.OutOrStdout(), output, "Created", t)
		})
	cmd.Long = `create saves version 1 of a new template named NAME: 1 to 64 lower-case letters, digits, - and
_, starting with a letter or a digit. An SMS template needs its content; an email template needs
content, an HTML part or both, and may have a subject. Each part is a template in the language a
send uses ({{.name}}, if, range, default, …), checked now as a send would check it; the HTML
part is also parsed as HTML (its escaping is checked when it is rendered). Every variable a part
uses must be declared with --var NAME, or --var NAME=DEFAULT for one a send may leave out. It
fails when NAME is taken, archived templates included.`
	cmd.Example = `  herald templates create otp --channel sms --content 'Your code is {{.code}}' --var code
  herald templates create welcome --channel email --subject 'Welcome, {{.name}}' \
      --content-file welcome.txt --html-file welcome.html --var name --var plan=free
  herald templates create receipt --channel email --html-file receipt.html --var total -o json`
	f.register(cmd.Flags(), true)
	_ = cmd.MarkFlagRequired("channel")
	return cmd
}

// templatesUpdateCommand saves a template's next version.
func templatesUpdateCommand() *cobra.Command {
	var f templateFlags
	var cmd *cobra.Command
	cmd = templateCommand("update NAME [--subject S] [--content-file F] [--html-file F] [--var V[=DEFAULT]]...",
		"Save a template's next version: the latest with the parts given replaced", cobra.ExactArgs(1), true,
		func([]string) error { return f.check(cmd) },
		func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, actor string, output format) error {
			cur, err := store.Get(ctx, args[0])
			if err != nil {
				return templateError(err)
			}
			l := cur.Latest
			d := templatestore.Draft{Channel: l.Channel, Subject: l.Subject, Content: l.Content, HTML: l.HTML,
				Variables: l.Variables, Description: l.Description}
			if err := f.apply(cmd, &d); err != nil {
				return err
			}
			t, err := store.UpdateFrom(ctx, args[0], l.Version, d, actor)
			if err != nil {
				return templateError(err)
			}
			return printTemplate(cmd.OutOrStdout(), output, "Saved", t)
		})
	cmd.Long = `update saves the next version of the template NAME: its latest version, with each part given
here replaced — --subject, --content or --content-file, --html-file, --description — and, when
any --var is given, the variables replaced by those given. An empty file (or --subject '')
clears a part. The new version is checked as create checks one. An archived template takes no
new version until it is restored; a template keeps its channel. If another version is saved
between the read of the latest and the save, update fails and saves nothing: run it again.`
	cmd.Example = `  herald templates update welcome --html-file welcome-v2.html
  herald templates update otp --content 'Your code: {{.code}} (valid {{.minutes}} min)' --var code --var minutes=10
  herald templates update welcome --html-file /dev/null -o json`
	f.register(cmd.Flags(), false)
	return cmd
}

// templatesListCommand prints a page of templates.
func templatesListCommand() *cobra.Command {
	var (
		f             templatestore.Filter
		channel       string
		archived, all bool
	)
	cmd := templateCommand("list", "List the templates: name, channel, latest version, updated, description", cobra.NoArgs, false,
		func([]string) error {
			if channel != "" {
				if _, err := herald.ParseChannel(channel); err != nil {
					return errors.New("--channel: " + herald.ErrorMessage(err))
				}
			}
			if archived && all {
				return errors.New("--archived, --all: give one")
			}
			if f.Limit < 1 || f.Limit > templatestore.MaxLimit {
				return fmt.Errorf("--limit: must be a whole number from 1 to %d", templatestore.MaxLimit)
			}
			return nil
		},
		func(ctx context.Context, cmd *cobra.Command, _ []string, store *templatestore.Store, _ string, output format) error {
			f.Channel = herald.Channel(channel)
			switch {
			case archived:
				f.Archived = templatestore.ArchivedOnly
			case all:
				f.Archived = templatestore.ArchivedInclude
			}
			page, next, err := store.List(ctx, f)
			if err != nil {
				return templateError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, wire.NewTemplateList(page, next))
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "NAME\tCHANNEL\tVERSION\tSTATE\tUPDATED\tBY\tDESCRIPTION")
			for _, t := range page {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.Name(), t.Latest.Channel, t.Latest.Version, templateState(t),
					tableTime(t.UpdatedAt), cell(t.UpdatedBy, 30), orDash(cell(t.Latest.Description, 50)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if next != "" {
				_, err = fmt.Fprintf(w, "\nMore are listed: --cursor %s\n", next)
			}
			return err
		})
	cmd.Long = `list prints the templates by name, a page at a time, each at its latest version: those in use,
with --archived the archived ones, with --all both. When more follow, list ends with the cursor
of the next page. -o json prints what GET /api/v1/templates answers.`
	cmd.Example = `  herald templates list
  herald templates list --channel sms --all
  herald templates list --archived -o json`
	fs := cmd.Flags()
	fs.StringVar(&channel, "channel", "", "list only this channel's templates: email or sms")
	fs.BoolVar(&archived, "archived", false, "list only the archived templates")
	fs.BoolVar(&all, "all", false, "list archived templates too")
	fs.IntVar(&f.Limit, "limit", templatestore.DefaultLimit, fmt.Sprintf("print at most this many templates (1 to %d)", templatestore.MaxLimit))
	fs.StringVar(&f.Cursor, "cursor", "", "print the page after the one that gave this cursor")
	markArguments(fs, "channel", "archived", "all", "limit", "cursor")
	return cmd
}

func templateState(t templatestore.Template) string {
	if t.Archived() {
		return "archived"
	}
	return "in use"
}

// templatesShowCommand prints a template, or one version of it.
func templatesShowCommand() *cobra.Command {
	cmd := templateCommand("show NAME[@N]", "Show a template at its latest version (or version N) and its history", cobra.ExactArgs(1), false,
		func(args []string) error {
			if _, _, problem := templatestore.ParseRef(args[0]); problem != "" {
				return errors.New("NAME: " + problem)
			}
			return nil
		},
		func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, _ string, output format) error {
			name, version, _ := templatestore.ParseRef(args[0])
			w := cmd.OutOrStdout()
			if version > 0 {
				v, err := store.GetVersion(ctx, name, version)
				if err != nil {
					return templateError(err)
				}
				if output == formatJSON {
					return writeJSON(w, wire.NewTemplateVersion(v))
				}
				return writeTemplateVersion(w, v)
			}
			t, err := store.Get(ctx, name)
			if err != nil {
				return templateError(err)
			}
			if output == formatJSON {
				return writeJSON(w, wire.NewTemplate(t))
			}
			history, err := store.History(ctx, name)
			if err != nil {
				return templateError(err)
			}
			if err := writeTemplate(w, t); err != nil {
				return err
			}
			return writeStreamHistory(w, history)
		})
	cmd.Long = `show prints the template NAME at its latest version — channel, state, variables, who changed
it when, and each part whole — and its history: every change, when, by whom, in words. NAME@N
prints version N instead, archived templates' too. -o json prints what
GET /api/v1/templates/{name} (or …/versions/{n}) answers; the history is
GET /api/v1/templates/{name}/events.`
	cmd.Example = `  herald templates show welcome
  herald templates show welcome@1
  herald templates show otp -o json`
	return cmd
}

// templatesVersionsCommand prints every version of a template.
func templatesVersionsCommand() *cobra.Command {
	cmd := templateCommand("versions NAME", "List every version of a template", cobra.ExactArgs(1), false, nil,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, _ string, output format) error {
			versions, err := store.Versions(ctx, args[0])
			if err != nil {
				return templateError(err)
			}
			w := cmd.OutOrStdout()
			if output == formatJSON {
				return writeJSON(w, wire.NewTemplateVersionList(args[0], versions))
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "VERSION\tCREATED\tBY\tVARIABLES\tDESCRIPTION")
			for _, v := range versions {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", v.Version, tableTime(v.CreatedAt), cell(v.CreatedBy, 30),
					orDash(cell(variableWords(v.Variables), 50)), orDash(cell(v.Description, 50)))
			}
			return tw.Flush()
		})
	cmd.Long = `versions prints every version of the template NAME, the first first; show NAME@N prints one
whole. -o json prints what GET /api/v1/templates/{name}/versions answers.`
	cmd.Example = `  herald templates versions welcome
  herald templates versions welcome -o json`
	return cmd
}

// templatesArchiveCommand archives a template, or restores one.
func templatesArchiveCommand(archive bool) *cobra.Command {
	var reason string
	use, short, done := "archive NAME --reason TEXT", "Archive a template: its name takes no new sends or versions", "Archived"
	if !archive {
		use, short, done = "restore NAME --reason TEXT", "Restore an archived template", "Restored"
	}
	cmd := templateCommand(use, short, cobra.ExactArgs(1), true, nil,
		func(ctx context.Context, cmd *cobra.Command, args []string, store *templatestore.Store, actor string, output format) error {
			do := store.Archive
			if !archive {
				do = store.Restore
			}
			t, err := do(ctx, args[0], reason, actor)
			if err != nil {
				return templateError(err)
			}
			return printTemplate(cmd.OutOrStdout(), output, done, t)
		})
	if archive {
		cmd.Long = `archive retires the template NAME: it takes no new version, and, once sends by name exist, no
new send by its name or by NAME@N. Its versions and history stay readable, and its name stays
taken. --reason is required, and recorded. restore undoes it.`
		cmd.Example = `  herald templates archive welcome --reason "replaced by onboarding"`
	} else {
		cmd.Long = `restore puts an archived template back in use, at the version it had. --reason is required, and
recorded.`
		cmd.Example = `  herald templates restore welcome --reason "onboarding withdrawn"`
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	markArguments(cmd.Flags(), "reason")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// variableWords renders declared variables: name, plan=free.
func variableWords(vars []events.TemplateVariable) string {
	parts := make([]string, len(vars))
	for i, v := range vars {
		parts[i] = v.Name
		if v.Default != nil {
			parts[i] += "=" + *v.Default
		}
	}
	return strings.Join(parts, ", ")
}

// printTemplate prints t after a change done ("Created"), as a table or JSON.
func printTemplate(w io.Writer, output format, done string, t templatestore.Template) error {
	if output == formatJSON {
		return writeJSON(w, wire.NewTemplate(t))
	}
	fmt.Fprintf(w, "%s template %s (version %d).\n\n", done, t.Name(), t.Latest.Version)
	return writeTemplate(w, t)
}

// writeTemplate prints t as a column of labelled values, then its parts whole.
func writeTemplate(w io.Writer, t templatestore.Template) error {
	tw := newTable(w)
	row := func(label, value string) { fmt.Fprintf(tw, "%s\t%s\n", label, value) }
	row("Name", t.Name())
	row("Channel", string(t.Latest.Channel))
	row("Version", fmt.Sprint(t.Latest.Version))
	row("State", templateState(t))
	if t.Archived() {
		row("Archived", tableTime(*t.ArchivedAt)+" by "+orDash(cell(t.ArchivedBy, 0))+": "+cell(t.ArchivedReason, 0))
	}
	row("Description", orDash(cell(t.Latest.Description, 0)))
	row("Variables", orDash(cell(variableWords(t.Latest.Variables), 0)))
	row("Created", tableTime(t.CreatedAt)+" by "+orDash(cell(t.CreatedBy, 0)))
	row("Updated", tableTime(t.UpdatedAt)+" by "+orDash(cell(t.UpdatedBy, 0)))
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeParts(w, t.Latest)
}

// writeTemplateVersion prints one version.
func writeTemplateVersion(w io.Writer, v templatestore.Version) error {
	tw := newTable(w)
	row := func(label, value string) { fmt.Fprintf(tw, "%s\t%s\n", label, value) }
	row("Name", v.Name)
	row("Channel", string(v.Channel))
	row("Version", fmt.Sprint(v.Version))
	row("Description", orDash(cell(v.Description, 0)))
	row("Variables", orDash(cell(variableWords(v.Variables), 0)))
	row("Created", tableTime(v.CreatedAt)+" by "+orDash(cell(v.CreatedBy, 0)))
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeParts(w, v)
}

// writeParts prints the parts a version has, each whole under its name, its lines kept and any
// other control character (an escape sequence a terminal would obey) shown as a space.
func writeParts(w io.Writer, v templatestore.Version) error {
	for _, p := range []struct{ label, text string }{{"Subject", v.Subject}, {"Content", v.Content}, {"HTML", v.HTML}} {
		if p.text == "" {
			continue
		}
		lines := strings.Split(strings.TrimRight(p.text, "\n"), "\n")
		for i, line := range lines {
			lines[i] = cell(line, 0)
		}
		if _, err := fmt.Fprintf(w, "\n%s:\n%s\n", p.label, strings.Join(lines, "\n")); err != nil {
			return err
		}
	}
	return nil
}
