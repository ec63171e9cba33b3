// Package doctest checks, for the commands' tests, that a man page made by
// kongdoc says what --help says.
package doctest

import (
	"bytes"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/nstest"
)

// RenderMan formats a man page's roff source as plain text with groff,
// and fails t on any groff warning.
func RenderMan(t *testing.T, roff string) string {
	t.Helper()
	nstest.RequireTool(t, "groff")
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-P-cbou", "-rLL=200n")
	cmd.Stdin = strings.NewReader(roff)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	// groff may typeset "-" as U+2010 or U+2212.
	return strings.NewReplacer("\u2010", "-", "\u2212", "-").Replace(stdout.String())
}

var flagRE = regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)`)

// HelpFlags returns the long flags a kong --help lists (each at the start
// of a line in its Flags section).
func HelpFlags(help string) []string {
	var out []string
	for _, m := range flagRE.FindAllStringSubmatch(help, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// CheckMan checks program's man page against its --help: run runs the
// program with args and returns its standard output (failing t on an
// error). The page (PROGRAM __man) must format without a groff warning,
// have a section for every command (PROGRAM __complete -- "" lists them)
// and name every flag of every command's --help.
func CheckMan(t *testing.T, program string, run func(args ...string) string) {
	t.Helper()
	page := RenderMan(t, run("__man"))
	cmds := strings.Fields(run("__complete", "--", ""))
	if len(cmds) < 2 {
		t.Fatalf("%s __complete lists the commands %q", program, cmds)
	}
	for _, cmd := range append([]string{""}, cmds...) {
		args := strings.Fields(cmd + " --help")
		flags := HelpFlags(run(args...))
		if len(flags) < 2 {
			t.Errorf("%s %s lists the flags %q: the help format changed?", program, strings.Join(args, " "), flags)
		}
		for _, f := range flags {
			if !strings.Contains(page, f) {
				t.Errorf("the man page lacks %s (%s %s)", f, program, strings.Join(args, " "))
			}
		}
		if cmd != "" && !strings.Contains(page, program+" "+cmd) {
			t.Errorf("the man page has no section for %s %s", program, cmd)
		}
	}
}
