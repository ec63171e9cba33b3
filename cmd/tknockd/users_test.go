package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
)

func TestUsersRevokeCommands(t *testing.T) {
	c := configtest.New(t, "")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice", "ssh", "web"))
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "bob", "web"))

	code, out, errOut := runCLI(t, "users", "-c", c.Path)
	if code != 0 {
		t.Fatalf("users: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"NAME", "alice  ssh,web", "bob    web", "2 users in"} {
		if !strings.Contains(out, want) {
			t.Errorf("users output lacks %q:\n%s", want, out)
		}
	}
	secret := b32(configtest.Enrollment(t, c, "alice").Secret)
	if strings.Contains(out+errOut, secret) || strings.Contains(out, "secret") {
		t.Errorf("users output shows a secret:\n%s", out)
	}

	code, out, errOut = runCLI(t, "revoke", "alice", "-c", c.Path)
	if code != 0 || !strings.Contains(out, "revoked alice") {
		t.Fatalf("revoke: exit %d: %s%s", code, out, errOut)
	}
	if _, err := os.Stat(config.UserFile(c.UsersDir, "alice")); !os.IsNotExist(err) {
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
	os.WriteFile(config.UserFile(c.UsersDir, "carol"), []byte("x"), 0o600)
	code, out, errOut = runCLI(t, "users", "-c", c.Path)
	if code != 1 || !strings.Contains(out, "bob") || !strings.Contains(errOut, "carol.uri") {
		t.Errorf("users with a bad file: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestCheckConfigCommand(t *testing.T) {
	c := configtest.New(t, "interfaces = [\"lo\"]")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice"))
	code, out, errOut := runCLI(t, "check-config", "--config", c.Path)
	if code != 0 || !strings.Contains(out, ": ok: realm \"gw.example.org\", 1 users") {
		t.Errorf("check-config: exit %d\n%s\n%s", code, out, errOut)
	}
	// The odds: 3 candidates (1 user, 1 service, 3 windows) of 53.3 bits:
	// 3 * 2^-53.3 = 2.7e-16.
	if want := "strength: weakest user alice, 53.3 bits per sequence (len 5, range 10000-32767); " +
		"one guessed attempt opens a door with probability at most 2.7e-16 (3 candidates: users x services x 3 windows)"; !strings.Contains(out, want) {
		t.Errorf("check-config output lacks %q:\n%s", want, out)
	}

	c = configtest.New(t, "interfaces = [\"lo\", \"tknockd-nx0\"]")
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
