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
	doctest.CheckMan(t, "tknockd", func(args ...string) string { return runDocs(t, args...) })
}

func TestComplete(t *testing.T) {
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"rev"}, []string{"revoke"}},
		{[]string{"rel"}, []string{"reload"}},
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
