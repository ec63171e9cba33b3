package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/kongdoc/doctest"
)

// runDocs runs tknockd with args and returns its standard output; it
// fails t on a non-zero exit.
func runDocs(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut strings.Builder
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("tknockd %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

// TestManPage checks that the man page lists every flag of every
// command's --help, and formats without a groff warning.
func TestManPage(t *testing.T) {
	page := doctest.RenderMan(t, runDocs(t, "__man"))
	cmds := strings.Fields(runDocs(t, "__complete", "--", ""))
	if len(cmds) < 6 {
		t.Fatalf("__complete lists the commands %q", cmds)
	}
	for _, cmd := range append([]string{""}, cmds...) {
		args := strings.Fields(cmd + " --help")
		flags := doctest.HelpFlags(runDocs(t, args...))
		if len(flags) < 2 {
			t.Errorf("tknockd %s lists the flags %q: the help format changed?", strings.Join(args, " "), flags)
		}
		for _, f := range flags {
			if !strings.Contains(page, f) {
				t.Errorf("the man page lacks %s (tknockd %s)", f, strings.Join(args, " "))
			}
		}
		if cmd != "" && !strings.Contains(page, "tknockd "+cmd) {
			t.Errorf("the man page has no section for tknockd %s", cmd)
		}
	}
}

func TestComplete(t *testing.T) {
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"re"}, []string{"revoke"}},
		{[]string{"--log"}, []string{"--log-format", "--log-level"}},
		{[]string{"enroll", "alice", "--png", "a"}, []string{":files"}},
		{[]string{"-c", ""}, []string{":files"}},
		{[]string{"completion", "f"}, []string{"fish"}},
	}
	for _, tt := range tests {
		got := strings.Fields(runDocs(t, append([]string{"__complete", "--"}, tt.words...)...))
		if !slices.Equal(got, tt.want) {
			t.Errorf("__complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
	if s := runDocs(t, "completion", "bash"); !strings.Contains(s, "complete -F _tknockd_complete tknockd") {
		t.Errorf("completion bash does not register the function:\n%s", s)
	}
}

func TestVersion(t *testing.T) {
	if out := runDocs(t, "--version"); !strings.HasPrefix(out, "tknockd ") || !strings.Contains(out, "revision ") {
		t.Errorf("--version prints %q", out)
	}
}
