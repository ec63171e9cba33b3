// Package configtest makes configurations and enrollments for tests of
// the packages that use internal/config.
package configtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// New writes a configuration file (a realm, extra TOML, and the services
// ssh = tcp/22 and web = tcp/80, tcp/443) and an empty users directory
// beside it in a temporary directory, and returns the loaded
// configuration.
func New(t testing.TB, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tknockd.toml")
	doc := "realm = \"gw.example.org\"\n" + extra + "\n[services]\nssh = [\"tcp/22\"]\nweb = [\"tcp/80\", \"tcp/443\"]\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "users"), 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Enrollment returns a valid enrollment of user name for c's realm, with
// a fixed secret derived from the name (so tests can compute sequences).
func Enrollment(t testing.TB, c *config.Config, name string, services ...string) *totpseq.Enrollment {
	t.Helper()
	p := c.Enroll.Params
	if len(services) > 0 {
		p.Services = services
	}
	p.Secret = []byte(strings.Repeat(name+"-secret-", 4))[:32]
	e := &totpseq.Enrollment{Name: name, Host: "gw.example.org", Params: p}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

// WriteUser writes e's enrollment file into c's users directory.
func WriteUser(t testing.TB, c *config.Config, e *totpseq.Enrollment) {
	t.Helper()
	if err := enrollfile.Write(config.UserFile(c.UsersDir, e.Name), e); err != nil {
		t.Fatal(err)
	}
}
