package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCommandBadConfig: `tknockd run` with a bad configuration exits 1
// and logs one JSON error line naming the file, the field and the problem.
func TestRunCommandBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.toml")
	os.WriteFile(path, []byte("realm = \"x\"\nopen_for = \"soon\"\n[services]\nssh = [\"tcp/22\"]\n"), 0o600)
	code, out, errOut := runCLI(t, "run", "--config", path, "--log-format", "json")
	if code != 1 || out != "" {
		t.Fatalf("run: exit %d, stdout %q", code, out)
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(errOut), &l); err != nil {
		t.Fatalf("stderr is not one JSON line: %q", errOut)
	}
	if l["level"] != "error" || !strings.Contains(fmt.Sprint(l["error"]), path+": line 2: field open_for: \"soon\"") {
		t.Errorf("error line: %v", l)
	}
	code, _, errOut = runCLI(t, "run", "--config", path, "--log-format", "xml")
	if code != 1 || !strings.Contains(errOut, "--log-format \"xml\"") {
		t.Errorf("bad --log-format: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "run", "--config", path, "--log-level", "loud")
	if code != 1 || !strings.Contains(errOut, "--log-level \"loud\"") {
		t.Errorf("bad --log-level: exit %d, %q", code, errOut)
	}
}
