package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the --help blocks in docs/ from the commands")

// helpBlock is a fenced block in the docs that shows a command's --help: it starts with
// "Usage:" and names the command on its next line.
var helpBlock = regexp.MustCompile("(?m)^```\n(Usage:\n  herald ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?: .*)?\n(?:.*\n)*?)```\n")

// The --help blocks the docs show are what the commands print. `go test ./cmd/herald
// -run TestDocsShowTrueHelp -update-docs` rewrites them.
func TestDocsShowTrueHelp(t *testing.T) {
	commandSettings(t) // clears HERALD_*, so the defaults shown are the built-in ones
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	blocks := 0
	for _, file := range files {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var failed bool
		out := helpBlock.ReplaceAllFunc(doc, func(block []byte) []byte {
			m := helpBlock.FindSubmatch(block)
			blocks++
			args := append(strings.Fields(string(m[2])), "--help")
			root := rootCommand()
			var buf bytes.Buffer
			root.SetOut(&buf)
			root.SetErr(&buf)
			root.SetArgs(args)
			if err := root.Execute(); err != nil {
				t.Errorf("%s: herald %s: %v", file, strings.Join(args, " "), err)
				return block
			}
			help := buf.String()
			if i := strings.Index(help, "Usage:"); i >= 0 {
				help = help[i:]
			}
			if help != string(m[1]) {
				failed = true
				if !*updateDocs {
					t.Errorf("%s shows a --help of `herald %s` that is not what it prints; run go test ./cmd/herald -run TestDocsShowTrueHelp -update-docs\n--- docs\n%s--- herald\n%s",
						file, strings.Join(args[:len(args)-1], " "), m[1], help)
				}
			}
			return []byte("```\n" + help + "```\n")
		})
		if failed && *updateDocs {
			if err := os.WriteFile(file, out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if blocks == 0 {
		t.Fatal("no --help block found in the docs: has their form changed?")
	}
}
