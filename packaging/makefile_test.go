package packaging

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/nstest"
)

// TestMakeHelp checks that make help (the Makefile's header) has one line
// for every target the Makefile declares .PHONY.
func TestMakeHelp(t *testing.T) {
	nstest.RequireTool(t, "make")
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no .PHONY line")
	}
	out, err := exec.Command("make", "-s", "-C", "..", "help").Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	lines := map[string]string{}
	for l := range strings.Lines(string(out)) {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = l
		}
	}
	for _, target := range strings.Fields(string(m[1])) {
		if lines[target] == "" {
			t.Errorf("make help has no line for %s:\n%s", target, out)
		}
		if !regexp.MustCompile(`(?m)^` + target + `:`).Match(mk) {
			t.Errorf(".PHONY names %s, which has no rule", target)
		}
	}
}
