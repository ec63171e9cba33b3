package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/totpseq"
)

// testConfig writes a configuration file (minimal plus extra TOML) and an
// empty users directory beside it, and returns the loaded configuration.
func testConfig(t testing.TB, extra string) *Config {
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
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrollment returns a valid enrollment of user name for c's realm, with
// a fixed secret derived from the name (so tests can compute sequences).
func enrollment(t testing.TB, c *Config, name string, services ...string) *totpseq.Enrollment {
	t.Helper()
	return testkit.Enrollment(t, name, "gw.example.org", func(p *totpseq.Params) {
		*p = c.Enroll.Params
		if len(services) > 0 {
			p.Services = services
		}
		p.Secret = []byte(strings.Repeat(name+"-secret-", 4))[:32]
	})
}

func writeUser(t testing.TB, c *Config, e *totpseq.Enrollment) {
	t.Helper()
	if err := enrollfile.Write(userFile(c.UsersDir, e.Name), e); err != nil {
		t.Fatal(err)
	}
}

func TestLoadUsers(t *testing.T) {
	c := testConfig(t, "")
	writeUser(t, c, enrollment(t, c, "bob", "web"))
	writeUser(t, c, enrollment(t, c, "alice", "ssh", "web"))
	// Ignored: other extensions, hidden files, directories.
	for name, content := range map[string]string{"README": "hello", "alice.uri~": "junk", ".carol.uri.tmp123": "junk", ".dave.uri": "junk"} {
		if err := os.WriteFile(filepath.Join(c.UsersDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(c.UsersDir, "old.uri"), 0o700); err != nil {
		t.Fatal(err)
	}
	users, err := loadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name+":"+strings.Join(u.Services, ","))
	}
	if got, want := strings.Join(names, " "), "alice:ssh,web bob:web"; got != want {
		t.Errorf("users = %s, want %s", got, want)
	}
}

func TestLoadUsersErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, c *Config)
		want  []string
	}{
		{"no directory", func(t *testing.T, c *Config) { os.Remove(c.UsersDir) },
			[]string{"users directory: ", "no such file", "set users_dir in"}},
		{"loose mode", func(t *testing.T, c *Config) {
			writeUser(t, c, enrollment(t, c, "alice"))
			os.Chmod(userFile(c.UsersDir, "alice"), 0o644)
		}, []string{"alice.uri: permissions are too open", "chmod 600"}},
		{"empty file", func(t *testing.T, c *Config) {
			os.WriteFile(userFile(c.UsersDir, "alice"), nil, 0o600)
		}, []string{"alice.uri: empty"}},
		{"not a uri", func(t *testing.T, c *Config) {
			os.WriteFile(userFile(c.UsersDir, "alice"), []byte("hello\n"), 0o600)
		}, []string{"alice.uri: enrollment URI"}},
		{"bad parameter", func(t *testing.T, c *Config) {
			uri := strings.Replace(enrollment(t, c, "alice").URI(), "len=4", "len=99", 1)
			os.WriteFile(userFile(c.UsersDir, "alice"), []byte(uri), 0o600)
		}, []string{"alice.uri: parameter len: 99"}},
		{"plain otp key", func(t *testing.T, c *Config) {
			os.WriteFile(userFile(c.UsersDir, "alice"), []byte("otpauth://totp/x:alice?secret=JBSWY3DPEHPK3PXP&issuer=x"), 0o600)
		}, []string{"alice.uri: parameter tknock: missing"}},
		{"name differs", func(t *testing.T, c *Config) {
			e := enrollment(t, c, "alice")
			enrollfile.Write(userFile(c.UsersDir, "bob"), e)
		}, []string{"bob.uri: account name \"alice\" differs from the file name"}},
		{"realm differs", func(t *testing.T, c *Config) {
			e := enrollment(t, c, "alice")
			e.Realm = "other.example.org"
			writeUser(t, c, e)
		}, []string{"alice.uri: parameter realm: \"other.example.org\" differs from the configured realm \"gw.example.org\""}},
		{"unknown service", func(t *testing.T, c *Config) {
			writeUser(t, c, enrollment(t, c, "alice", "ssh", "db"))
		}, []string{"alice.uri: parameter services: \"db\" is not in [services]"}},
		{"two bad files, both named", func(t *testing.T, c *Config) {
			writeUser(t, c, enrollment(t, c, "alice", "db"))
			writeUser(t, c, enrollment(t, c, "bob"))
			os.WriteFile(userFile(c.UsersDir, "carol"), []byte("x"), 0o600)
		}, []string{"alice.uri: parameter services", "carol.uri: enrollment URI"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(t, "")
			tt.setup(t, c)
			users, err := loadUsers(c)
			if err == nil {
				t.Fatalf("loadUsers accepted the directory (%d users)", len(users))
			}
			rest := err.Error()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error\n%v\ndoes not contain %q (in order)", err, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestUsersRevokeCommands(t *testing.T) {
	c := testConfig(t, "")
	writeUser(t, c, enrollment(t, c, "alice", "ssh", "web"))
	writeUser(t, c, enrollment(t, c, "bob", "web"))

	code, out, errOut := runCLI(t, "users", "-c", c.Path)
	if code != 0 {
		t.Fatalf("users: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"NAME", "alice  ssh,web", "bob    web", "2 users in"} {
		if !strings.Contains(out, want) {
			t.Errorf("users output lacks %q:\n%s", want, out)
		}
	}
	secret := b32(enrollment(t, c, "alice").Secret)
	if strings.Contains(out+errOut, secret) || strings.Contains(out, "secret") {
		t.Errorf("users output shows a secret:\n%s", out)
	}

	code, out, errOut = runCLI(t, "revoke", "alice", "-c", c.Path)
	if code != 0 || !strings.Contains(out, "revoked alice") {
		t.Fatalf("revoke: exit %d: %s%s", code, out, errOut)
	}
	if _, err := os.Stat(userFile(c.UsersDir, "alice")); !os.IsNotExist(err) {
		t.Errorf("alice.uri still there after revoke: %v", err)
	}
	code, _, errOut = runCLI(t, "revoke", "alice", "-c", c.Path)
	if code != 1 || !strings.Contains(errOut, `no user "alice"`) {
		t.Errorf("second revoke: exit %d, stderr %q; want 1 and no user", code, errOut)
	}
	code, _, errOut = runCLI(t, "revoke", "../etc/passwd", "-c", c.Path)
	if code != 1 || !strings.Contains(errOut, "user name") {
		t.Errorf("revoke of a path: exit %d, stderr %q", code, errOut)
	}

	// A bad file is listed as an error, and the good users still are.
	os.WriteFile(userFile(c.UsersDir, "carol"), []byte("x"), 0o600)
	code, out, errOut = runCLI(t, "users", "-c", c.Path)
	if code != 1 || !strings.Contains(out, "bob") || !strings.Contains(errOut, "carol.uri") {
		t.Errorf("users with a bad file: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestCheckConfigCommand(t *testing.T) {
	c := testConfig(t, "interfaces = [\"lo\"]")
	writeUser(t, c, enrollment(t, c, "alice"))
	code, out, errOut := runCLI(t, "check-config", "--config", c.Path)
	if code != 0 || !strings.Contains(out, ": ok: realm \"gw.example.org\", 1 users") {
		t.Errorf("check-config: exit %d\n%s\n%s", code, out, errOut)
	}

	c = testConfig(t, "interfaces = [\"lo\", \"tknockd-nx0\"]")
	code, _, errOut = runCLI(t, "check-config", "--config", c.Path)
	if code != 1 || !strings.Contains(errOut, `field interfaces: interface "tknockd-nx0" does not exist`) {
		t.Errorf("check-config with a missing interface: exit %d, stderr:\n%s", code, errOut)
	}

	os.WriteFile(c.Path, []byte("realm = \"x\"\nskew = 9\n"), 0o600)
	code, _, errOut = runCLI(t, "check-config", "--config", c.Path)
	if code != 1 || !strings.Contains(errOut, c.Path+": line 2: field skew: 9") {
		t.Errorf("check-config of a bad file: exit %d, stderr:\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, "check-config", "--bogus")
	if code != 2 || !strings.Contains(errOut, "--bogus") {
		t.Errorf("bad flag: exit %d, stderr:\n%s", code, errOut)
	}
	code, out, _ = runCLI(t, "--help")
	if code != 0 || !strings.Contains(out, "check-config") {
		t.Errorf("--help: exit %d, stdout:\n%s", code, out)
	}
}

// runCLI runs the command line args and returns the exit status and
// outputs.
func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}
