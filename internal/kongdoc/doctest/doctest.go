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
