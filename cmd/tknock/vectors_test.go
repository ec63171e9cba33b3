package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/vectors"
	"github.com/tknock/tknock/totpseq"
)

// TestPrintVectors writes each vector as an enrollment file and checks
// that `tknock print` prints exactly its sequence: the ports, space
// separated, on one line, and nothing else.
func TestPrintVectors(t *testing.T) {
	vs, err := vectors.Load("../../testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	dir := t.TempDir()
	for i, v := range vs {
		p, _, err := v.Params()
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		path := filepath.Join(dir, fmt.Sprintf("v%d.uri", i))
		if err := enrollfile.Write(path, &totpseq.Enrollment{Name: "vector", Params: p}); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		at := fmt.Sprint(v.Window * uint64(p.Period))
		code, out, errOut := e.run("print", "--enrollment", path, "--service", v.Service, "--source", v.IP, "--at", at)
		want := strings.Trim(fmt.Sprint(v.Sequence), "[]") + "\n"
		if code != 0 || out != want || errOut != "" {
			t.Errorf("vector %d: tknock print ... --source %s --at %s: exit %d, stdout %q, stderr %q; want %q",
				i, v.IP, at, code, out, errOut, want)
		}
	}
}
