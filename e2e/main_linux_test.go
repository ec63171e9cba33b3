package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built holds the binaries under test, built once per run on first use.
var built struct {
	once            sync.Once
	dir             string
	tknockd, tknock string
	err             error
}

// TestMain removes the binaries after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binaries builds tknockd and tknock once per test run, static
// (CGO_ENABLED=0) as they ship, and returns their paths. A build failure
// fails every test that needs them.
func binaries(t testing.TB) (tknockd, tknock string) {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "tknock-e2e-bin-")
		if built.err != nil {
			return
		}
		for _, b := range []struct {
			pkg string
			dst *string
		}{
			{"github.com/tknock/tknock/cmd/tknockd", &built.tknockd},
			{"github.com/tknock/tknock/cmd/tknock", &built.tknock},
		} {
			*b.dst = filepath.Join(built.dir, filepath.Base(b.pkg))
			cmd := exec.Command("go", "build", "-trimpath", "-o", *b.dst, b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.tknockd, built.tknock
}

func tknockdBin(t testing.TB) string { d, _ := binaries(t); return d }

func tknockBin(t testing.TB) string { _, c := binaries(t); return c }
