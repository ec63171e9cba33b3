package main

import (
	"encoding/json"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/daemon"
)

func putState(t *testing.T, c *config.Config, st daemon.State) {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(daemon.StatePath(daemon.RuntimeDir(), c), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckConfigBadUser: a bad users file is named as a warning, and
// check-config (the unit's ExecStartPre) still passes, so the daemon
// starts with the good users; the running daemon's last reload is shown,
// with its errors.
func TestCheckConfigBadUser(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	c := configtest.New(t, "")
	configtest.WriteUser(t, c, configtest.Enrollment(t, c, "alice"))
	bad := configtest.Enrollment(t, c, "bob", "ssh")
	bad.Services = []string{"ftp"}
	configtest.WriteUser(t, c, bad)
	code, out, errOut := runCLI(t, "check-config", "--config", c.Path)
	if code != 0 || !strings.Contains(out, "ok: realm \"gw.example.org\", 1 users in "+c.UsersDir+" (1 users files rejected, see above)") ||
		!strings.Contains(errOut, "warning: "+config.UserFile(c.UsersDir, "bob")+": parameter services: \"ftp\" is not in [services]") {
		t.Errorf("check-config with a bad users file: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "daemon: no state in") {
		t.Errorf("check-config without a daemon: %s", out)
	}

	putState(t, c, daemon.State{PID: os.Getpid(), Config: c.Path, Seq: 3, Event: "reload", Time: time.Now(),
		Applied: "the users directory, under the configuration loaded before (the file has errors)", Users: 1,
		Errors: []string{c.Path + ": line 2: field skew: 9: want 0..5 windows"}})
	_, out, _ = runCLI(t, "check-config", "--config", c.Path)
	if !strings.Contains(out, "daemon: last reload of tknockd (pid ") || !strings.Contains(out, ": FAILED: the users directory") ||
		!strings.Contains(out, "\n  "+c.Path+": line 2: field skew: 9") {
		t.Errorf("check-config with a failed reload:\n%s", out)
	}
	os.Remove(config.UserFile(c.UsersDir, "bob"))
	os.RemoveAll(c.UsersDir)
	code, _, errOut = runCLI(t, "check-config", "--config", c.Path)
	if code != 1 || !strings.Contains(errOut, "users directory") {
		t.Errorf("check-config without a users directory: exit %d, %s", code, errOut)
	}
}

// TestReloadCommand: `tknockd reload` signals the daemon named by the state
// file of its configuration (here this test process, which answers SIGHUP
// as the daemon does: a new state), and prints the result; a failed reload
// makes it fail, so systemctl reload reports it.
func TestReloadCommand(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	c := configtest.New(t, "")
	code, _, errOut := runCLI(t, "reload", "--config", c.Path)
	if code != 1 || !strings.Contains(errOut, "no running tknockd for "+c.Path) {
		t.Errorf("reload without a daemon: exit %d, %s", code, errOut)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	st := daemon.State{PID: os.Getpid(), Config: c.Path, Event: "start", OK: true, Time: time.Now(), Users: 1}
	putState(t, c, st)
	for _, ok := range []bool{true, false} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			select {
			case <-hup:
			case <-time.After(10 * time.Second):
				t.Errorf("no SIGHUP")
				return
			}
			st.Seq++
			st.Event, st.OK, st.Applied = "reload", ok, "the configuration and the users directory"
			if !ok {
				st.Applied, st.Errors = "nothing", []string{"users/bob.uri: parameter realm: \"x\" differs"}
			}
			putState(t, c, st)
		}()
		code, out, errOut := runCLI(t, "reload", "--config", c.Path, "--wait", "10s")
		<-done
		want := 0
		if !ok {
			want = 1
		}
		if code != want || !strings.Contains(out, "last reload of tknockd") || ok != !strings.Contains(out, "FAILED") {
			t.Errorf("reload (ok %v): exit %d, want %d\n%s%s", ok, code, want, out, errOut)
		}
	}
}
