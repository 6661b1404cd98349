package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCell(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\tb\nc\rd", 0, "a b c d"},
		{"twelve chars", 6, "twelv…"},
		{"ééééé", 5, "ééééé"},
		{"éééééé", 5, "éééé…"},
		{strings.Repeat("x", 500), 0, strings.Repeat("x", 500)},
	}
	for _, tt := range tests {
		if got := cell(tt.in, tt.max); got != tt.want {
			t.Errorf("cell(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
	for in, want := range map[string]string{"": "-", "  ": "-", "x": "x"} {
		if got := orDash(in); got != want {
			t.Errorf("orDash(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every command's -o refuses a format it does not offer while the command line is parsed, in
// the same words, and defaults to the first it offers.
func TestRegisterFormat(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	f := registerFormat(fs, formatTable, formatJSONL, formatJSON)
	if *f != formatTable {
		t.Errorf("default %q, want table", *f)
	}
	err := fs.Parse([]string{"-o", "yaml"})
	if want := `invalid argument "yaml" for "-o, --output" flag: want table, jsonl or json`; err == nil || err.Error() != want {
		t.Errorf("-o yaml: %v, want %s", err, want)
	}
	if err := fs.Parse([]string{"--output", "jsonl"}); err != nil || *f != formatJSONL {
		t.Errorf("--output jsonl: %v, format %q", err, *f)
	}
	if _, ok := fs.Lookup("output").Annotations[argumentAnnotation]; !ok {
		t.Error("-o is marked as a setting: it would need an environment variable")
	}
	if got := orList([]string{"a"}); got != "a" {
		t.Errorf("orList of one: %q", got)
	}
}

func TestWriteJSON(t *testing.T) {
	v := map[string]string{"id": "<m@example.com>"}
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil || b.String() != "{\n  \"id\": \"<m@example.com>\"\n}\n" {
		t.Errorf("writeJSON: %v %q", err, b.String())
	}
	b.Reset()
	if err := writeJSONLine(&b, v); err != nil || b.String() != "{\"id\":\"<m@example.com>\"}\n" {
		t.Errorf("writeJSONLine: %v %q", err, b.String())
	}
}

// A stream hands its output on every streamFlushEvery rows, so a reader of a pipe sees rows while
// the scan goes on, and a table's columns are aligned within each block.
func TestStreamFlushesEveryBlock(t *testing.T) {
	var b bytes.Buffer
	s := newStream(&b, formatTable)
	for i := range streamFlushEvery {
		if b.Len() != 0 {
			t.Fatalf("output after %d rows, want none before %d", i, streamFlushEvery)
		}
		if _, err := fmt.Fprintf(s.table, "%d\tx\n", i); err != nil {
			t.Fatal(err)
		}
		if err := s.row(); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(b.String(), "\n"); got != streamFlushEvery {
		t.Fatalf("%d lines out after %d rows, want all of them", got, streamFlushEvery)
	}
	fmt.Fprintf(s.table, "a much longer first cell\tx\n")
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if first, last := lines[0], lines[len(lines)-1]; first != "0    x" || last != "a much longer first cell  x" {
		t.Errorf("blocks aligned apart: first %q, last %q", first, last)
	}
}

func TestEncodeJSONIndentsInPlace(t *testing.T) {
	var b bytes.Buffer
	if err := encodeJSON(&b, map[string]int{"a": 1}, "  ", "  "); err != nil {
		t.Fatal(err)
	}
	if want := "{\n    \"a\": 1\n  }"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
