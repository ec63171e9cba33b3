package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds the binaries under test, each built once per run on first
// use; TestMain removes it.
var binDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "tknock-e2e-bin-") })

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// builder builds one command of the module, once, static (CGO_ENABLED=0)
// as it ships.
func builder(pkg string) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		dir, err := binDir()
		if err != nil {
			return "", err
		}
		dst := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", dst, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		return dst, nil
	})
}

var (
	buildTknockd = builder("github.com/tknock/tknock/cmd/tknockd")
	buildTknock  = builder("github.com/tknock/tknock/cmd/tknock")
)

// tknockdBin returns the path of the tknockd binary; a build failure fails
// the test.
func tknockdBin(t testing.TB) string {
	t.Helper()
	p, err := buildTknockd()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tknockBin returns the path of the tknock binary.
func tknockBin(t testing.TB) string {
	t.Helper()
	p, err := buildTknock()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
