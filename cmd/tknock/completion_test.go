package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/kongdoc/doctest"
	"github.com/tknock/tknock/internal/nstest"
)

// completionEnv has two profiles: ssh.example.com (named after its host)
// and work (at ssh6.example.com).
func completionEnv(t *testing.T) *env {
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI())
	e.mustRun("enroll", "--uri", enrollment(t, "ssh6.example.com", inet.TCP).URI(), "--name", "work")
	return e
}

func TestComplete(t *testing.T) {
	e := completionEnv(t)
	commands := []string{"knock", "enroll", "list", "remove", "print", "ssh-proxy", "completion"}
	profiles := []string{"ssh.example.com", "work", "ssh6.example.com"}
	tests := []struct {
		words []string
		want  []string
	}{
		// tknock HOST is the default command: commands and profiles.
		{[]string{""}, append(slices.Clone(commands), profiles...)},
		{[]string{"w"}, []string{"work"}},
		{[]string{"r"}, []string{"remove"}},
		{[]string{"knock", ""}, profiles},
		{[]string{"knock", "work", ""}, nil},
		{[]string{"remove", "ssh"}, []string{"ssh.example.com", "ssh6.example.com"}},
		{[]string{"ssh-proxy", "wo"}, []string{"work"}},
		{[]string{"print", "--profile", "w"}, []string{"work"}},
		{[]string{"print", "--profile=w"}, []string{"--profile=work"}},
		{[]string{"-v", "--config-dir", e.config, "remove", "w"}, []string{"work"}},
		{[]string{"--config-dir=" + t.TempDir(), "remove", ""}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"--vers"}, []string{"--version"}},
		{[]string{"list", "--"}, []string{"--help", "--verbose", "--config-dir", "--cache-dir", "--version"}},
		{[]string{"knock", "--enrollment", ""}, []string{":files"}},
		{[]string{"enroll", "--qr", "x"}, []string{":files"}},
		{[]string{"nosuchcommand", ""}, nil},
	}
	for _, tt := range tests {
		code, out, errOut := e.run(append([]string{"__complete", "--"}, tt.words...)...)
		if code != 0 || errOut != "" {
			t.Errorf("__complete %q: exit %d, stderr %q", tt.words, code, errOut)
			continue
		}
		if got := strings.Fields(out); !slices.Equal(got, tt.want) {
			t.Errorf("__complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
}

// buildTknock builds the tknock binary into a new directory and returns
// the directory.
func buildTknock(t *testing.T) string {
	t.Helper()
	nstest.RequireTool(t, "go")
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestCompletionScripts runs the scripts `tknock completion SHELL` prints
// in the shells themselves: bash's completion function with COMP_WORDS set
// (with bash-completion loaded, as the installed script is, and without),
// fish's complete -C; zsh is only parsed (its completion system needs a
// terminal).
func TestCompletionScripts(t *testing.T) {
	e := completionEnv(t)
	bin := buildTknock(t)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	scripts := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		s := e.mustRun("completion", sh)
		if err := os.WriteFile(filepath.Join(scripts, sh), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := e.run("completion", "tcsh"); code != 2 || !strings.Contains(errOut, "tcsh") {
		t.Errorf("completion tcsh: exit %d, stderr %q; want a usage error", code, errOut)
	}

	bash := func(t *testing.T, preamble string, words ...string) []string {
		t.Helper()
		nstest.RequireTool(t, "bash")
		line := strings.Join(words, " ")
		script := preamble + `
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_tknock_complete
printf '%s\n' "${COMPREPLY[@]}"
`
		out, err := exec.Command("bash", append([]string{"-c", script, "bash", filepath.Join(scripts, "bash")}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	t.Run("bash", func(t *testing.T) {
		if got := bash(t, "", "tknock", "remove", "w"); !slices.Equal(got, []string{"work"}) {
			t.Errorf("tknock remove w<TAB> offers %q, want [work]", got)
		}
		if got := bash(t, "", "tknock", "ssh"); !slices.Equal(got, []string{"ssh-proxy", "ssh.example.com", "ssh6.example.com"}) {
			t.Errorf("tknock ssh<TAB> offers %q", got)
		}
	})
	t.Run("bash-completion", func(t *testing.T) {
		const lib = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(lib); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("needs Debian's bash-completion (%v); CI=true, so it fails rather than skips", err)
			}
			t.Skipf("skipping: bash-completion is not installed (%v)", err)
		}
		pre := "source " + lib
		if got := bash(t, pre, "tknock", "remove", "w"); !slices.Equal(got, []string{"work"}) {
			t.Errorf("tknock remove w<TAB> offers %q, want [work]", got)
		}
		// bash splits "--profile=w" at the "="; the candidate replaces
		// only what follows it.
		if got := bash(t, pre, "tknock", "print", "--profile=w"); !slices.Equal(got, []string{"work"}) {
			t.Errorf("tknock print --profile=w<TAB> offers %q, want [work]", got)
		}
	})
	t.Run("fish", func(t *testing.T) {
		nstest.RequireTool(t, "fish")
		out, err := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C "tknock remove w"`, filepath.Join(scripts, "fish")).CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		if got := strings.Fields(string(out)); !slices.Equal(got, []string{"work"}) {
			t.Errorf("fish: tknock remove w<TAB> offers %q, want [work]", got)
		}
	})
	t.Run("zsh", func(t *testing.T) {
		nstest.RequireTool(t, "zsh")
		if out, err := exec.Command("zsh", "-n", filepath.Join(scripts, "zsh")).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
	})
}

// TestManPage checks that the man page lists every flag of every
// command's --help, and formats without a groff warning.
func TestManPage(t *testing.T) {
	e := newEnv(t)
	doctest.CheckMan(t, "tknock", e.mustRun)
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	if out := e.mustRun("--version"); !strings.HasPrefix(out, "tknock ") || !strings.Contains(out, "revision ") {
		t.Errorf("--version prints %q", out)
	}
}
