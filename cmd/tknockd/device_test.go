package main

import (
	"os"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/enrollfile"
)

// TestEnrollCheckPorts: the enrollment names the port that confirms each
// of its services, from [services]: web's first TCP endpoint.
func TestEnrollCheckPorts(t *testing.T) {
	c := configtest.New(t, "")
	if code, _, errOut := runCLI(t, "enroll", "alice", "--service", "ssh,web", "--no-qr", "-c", c.Path); code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut)
	}
	e, err := enrollfile.Read(config.UserFile(c.UsersDir, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range e.Check {
		got = append(got, ch.String())
	}
	if strings.Join(got, ",") != "ssh:tcp/22,web:tcp/80" {
		t.Errorf("enrollment check ports %v, want ssh:tcp/22,web:tcp/80", got)
	}
}

// TestDevices: one enrollment per device, each its own user and secret;
// revoking the person removes every device, revoking a device only that.
func TestDevices(t *testing.T) {
	c := configtest.New(t, "")
	enroll := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append(append([]string{"enroll"}, args...), "--no-qr", "-c", c.Path)...)
		if code != 0 {
			t.Fatalf("enroll %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	enroll("alice")
	if out := enroll("alice", "--device", "phone"); !strings.Contains(out, "enrolled alice@phone for ssh") {
		t.Errorf("enroll --device phone says:\n%s", out)
	}
	enroll("alice", "--device", "laptop")
	enroll("alice2")                 // another user whose name starts with alice
	enroll("alice@example.org.mail") // a name of the form NAME@X: a device of alice, see below
	laptop, err := enrollfile.Read(config.UserFile(c.UsersDir, "alice@laptop"))
	if err != nil {
		t.Fatal(err)
	}
	phone, err := enrollfile.Read(config.UserFile(c.UsersDir, "alice@phone"))
	if err != nil {
		t.Fatal(err)
	}
	if string(laptop.Secret) == string(phone.Secret) || laptop.Name != "alice@laptop" {
		t.Errorf("devices share a secret, or the laptop's name is %q", laptop.Name)
	}
	users, err := config.LoadUsers(c)
	if err != nil || len(users) != 5 {
		t.Fatalf("the daemon's loader reads %d users, %v; want 5", len(users), err)
	}
	if _, out, _ := runCLI(t, "users", "-c", c.Path); !strings.Contains(out, "alice@phone") || !strings.Contains(out, "5 users") {
		t.Errorf("users does not list the devices:\n%s", out)
	}

	for _, tc := range []struct{ args []string }{
		{[]string{"alice", "--device", "-x"}},
		{[]string{"alice", "--device", "a/b"}},
		{[]string{"alice@phone", "--device", "tablet"}},
		{[]string{"alice", "--device", strings.Repeat("p", 60)}},
	} {
		code, _, errOut := runCLI(t, append(append([]string{"enroll"}, tc.args...), "-c", c.Path)...)
		if code == 0 || !strings.Contains(errOut, "device") {
			t.Errorf("enroll %v: exit %d, stderr %q; want an error about the device", tc.args, code, errOut)
		}
	}

	// One device.
	code, out, errOut := runCLI(t, "revoke", "alice", "--device", "phone", "-c", c.Path)
	if code != 0 || !strings.Contains(out, "revoked alice@phone") || strings.Contains(out, "revoked alice:") {
		t.Errorf("revoke --device phone: exit %d\n%s%s", code, out, errOut)
	}
	// The person: alice and her laptop; not alice2. alice@example.org.mail
	// reads as a device of alice (a name NAME@X always does): revoked too.
	code, out, errOut = runCLI(t, "revoke", "alice", "-c", c.Path)
	if code != 0 || !strings.Contains(out, "revoked alice: ") || !strings.Contains(out, "revoked alice@laptop: ") {
		t.Errorf("revoke alice: exit %d\n%s%s", code, out, errOut)
	}
	for name, want := range map[string]bool{"alice": false, "alice@phone": false, "alice@laptop": false, "alice2": true, "alice@example.org.mail": false} {
		_, err := os.Stat(config.UserFile(c.UsersDir, name))
		if got := err == nil; got != want {
			t.Errorf("after the revokes, %s.uri exists: %v, want %v", name, got, want)
		}
	}
	if code, _, errOut := runCLI(t, "revoke", "alice", "--device", "phone", "-c", c.Path); code != 1 || !strings.Contains(errOut, `no user "alice@phone"`) {
		t.Errorf("revoke of a revoked device: exit %d, %q", code, errOut)
	}
}
