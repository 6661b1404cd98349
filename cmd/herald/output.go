package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"
)

// This file is how every command presents what it found: the one -o flag and its formats, JSON
// encoding, table cells and times. A command decides what to print; how is decided here once,
// so that every command's output reads alike and a script parses them the same way.

// format is an output format a command prints in, chosen with -o.
type format string

// The formats a command may offer. table is for people; json and jsonl are for scripts.
const (
	formatTable format = "table"
	formatJSON  format = "json"
	formatJSONL format = "jsonl"
)

// choice is a flag's value that must be one of a few words. It refuses any other while the
// command line is parsed, so a wrong word is reported before anything connects, in the same
// words by every command.
type choice[T ~string] struct {
	value   *T
	allowed []T
}

// String is the chosen word.
func (c choice[T]) String() string {
	if c.value == nil {
		return ""
	}
	return string(*c.value)
}

// Set accepts v only when it is one of the allowed words.
func (c choice[T]) Set(v string) error {
	if !slices.Contains(c.allowed, T(v)) {
		return fmt.Errorf("want %s", orList(c.allowed))
	}
	*c.value = T(v)
	return nil
}

// Type is what --help shows as the flag's argument: a word, like any string flag.
func (c choice[T]) Type() string { return "string" }

// registerChoice adds to fs a flag whose value is one of allowed, the first being its default.
func registerChoice[T ~string](fs *pflag.FlagSet, p *T, name, shorthand, usage string, allowed ...T) {
	*p = allowed[0]
	fs.VarP(choice[T]{value: p, allowed: allowed}, name, shorthand, usage)
}

// registerFormat adds -o/--output to fs, offering allowed (the first is the default), and returns
// where the chosen format is kept. It says what one invocation prints, so it has no environment
// variable.
func registerFormat(fs *pflag.FlagSet, allowed ...format) *format {
	out := new(format)
	registerChoice(fs, out, "output", "o", "output format: "+orList(allowed), allowed...)
	markArguments(fs, "output")
	return out
}

// orList lists words as a sentence does: "a", "a or b", "a, b or c".
func orList[T ~string](words []T) string {
	s := make([]string, len(words))
	for i, w := range words {
		s[i] = string(w)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Every JSON a command prints leaves <, > and & as they are: message ids have them, and no
// browser reads this output.

// writeJSON writes v as indented JSON and a newline: what a command prints once, whole.
func writeJSON(w io.Writer, v any) error {
	if err := encodeJSON(w, v, "", "  "); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// writeJSONLine writes v as JSON on one line, ending it: one record of a jsonl stream.
func writeJSONLine(w io.Writer, v any) error {
	if err := encodeJSON(w, v, "", ""); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// encodeJSON writes v as JSON without ending it, for an element of an array written as it is
// read: on one line when indent is empty, else indented by indent with prefix before every line
// but the first, so that it sits at its place in an enclosing indented document.
func encodeJSON(w io.Writer, v any, prefix, indent string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent(prefix, indent)
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return err
}

// newTable returns a writer that aligns tab-separated columns, two spaces apart. Cells must go
// through cell, or a tab or a newline in a value shifts every column after it.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// cell makes s safe for one table cell: control characters (a tab, a newline) become spaces, and
// when max > 0 it is cut to at most max characters, the last an ellipsis.
func cell(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

// orDash is s, or "-" when s is blank: an empty cell would make a table's columns hard to read.
func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// logTime renders an instant of the event log in UTC with its microseconds, at a fixed width, so
// that events that happened in the same second still read in order.
func logTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// tableTime renders an instant to the second in UTC, or "-" when there is none.
func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// streamFlushEvery is how many rows a stream writes between flushes: a table's columns are
// aligned within each such block, and output reaches a reader of a pipe while the scan goes on.
const streamFlushEvery = 500

// stream is output written while a scan goes on, one row at a time, holding none of them: in the
// table format through a tabwriter whose columns are aligned a block of rows at a time.
type stream struct {
	format format
	buf    *bufio.Writer
	table  *tabwriter.Writer // the table format only
	rows   int
}

// newStream returns a stream to w in format f.
func newStream(w io.Writer, f format) stream {
	s := stream{format: f, buf: bufio.NewWriter(w)}
	if f == formatTable {
		s.table = newTable(s.buf)
	}
	return s
}

// row counts a row written, flushing every streamFlushEvery rows.
func (s *stream) row() error {
	s.rows++
	if s.rows%streamFlushEvery == 0 {
		return s.flush()
	}
	return nil
}

// flush sends on what is buffered, aligning the table's last block.
func (s *stream) flush() error {
	if s.table != nil {
		if err := s.table.Flush(); err != nil {
			return err
		}
	}
	return s.buf.Flush()
}

// printer writes a sequence of lines and keeps the first error, so that the sequence checks it
// once at the end.
type printer struct {
	w   io.Writer
	err error
}

// printf writes unless an earlier write failed.
func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
