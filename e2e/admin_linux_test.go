package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// TestOneDaemonPerTable starts two real daemons on the same configuration
// in one network namespace: the second refuses to start, naming the
// first by its pid, and the first runs on and opens; after the first
// stops, a daemon starts again.
func TestOneDaemonPerTable(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "nft")
	e := newEnv(t, v4)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	cfg := e.writeConfig(config{DropKnocks: ptr(true)})
	d1 := e.startDaemon(cfg)

	d2 := e.spawnDaemon(cfg)
	select {
	case <-d2.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("a second daemon on the same table still runs after 10 s")
	}
	want := fmt.Sprintf("another tknockd (pid %d) already runs table inet tknock in this network namespace: stop it first", d1.cmd.Process.Pid)
	if d2.waitErr == nil || !strings.Contains(d2.text(), want) {
		t.Errorf("second daemon: exit %v, log:\n%s\nwant an error naming %q", d2.waitErr, d2.text(), want)
	}
	if !d1.alive() {
		t.Fatalf("the first daemon stopped")
	}
	m := d1.mark()
	e.knock(alice, "ssh")
	if _, err := d1.waitFrom(m, 5*time.Second, "an opening by the first daemon", isOpen("alice", "ssh")); err != nil {
		t.Fatal(err)
	}
	d1.stop()
	e.startDaemon(cfg)
}

// TestBadUsersFile: a bad users file beside good ones. A revocation made
// at the same time applies at the reload, which `tknockd reload` (the
// unit's ExecReload) reports as failed, naming the file, as check-config
// and status do; the daemon restarts with the bad file still there, and
// the good users get in.
func TestBadUsersFile(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "nft")
	e := newEnv(t, v4)
	e.serve(sshPort)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	bob := e.enroll("bob", params{Proto: inet.TCP})
	cfg := e.writeConfig(config{DropKnocks: ptr(true)})
	d := e.startDaemon(cfg)

	mallory := filepath.Join(filepath.Dir(alice.serverFile), "mallory.uri")
	if err := os.WriteFile(mallory, []byte("otpauth://totp/tknock:mallory?secret=NOTBASE32!&tknock=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := e.tknockd("revoke", "bob", "--config", cfg); code != 0 {
		t.Fatalf("revoke bob: exit %d: %s%s", code, out, errOut)
	}
	out, errOut, code := e.tknockd("reload", "--config", cfg)
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "mallory.uri") {
		t.Errorf("tknockd reload with a bad users file: exit %d, stdout:\n%s\nstderr:\n%s\nwant 1 and the file named", code, out, errOut)
	}
	m := d.mark()
	e.knock(bob, "ssh")
	e.knock(alice, "ssh")
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
		t.Fatal(err)
	}
	if got := d.since(m, isOpen("bob", "ssh")); len(got) != 0 {
		t.Errorf("bob, revoked, opens after a reload with a bad file beside: %s", got[0].raw)
	}
	for _, cmd := range []string{"check-config", "status"} {
		out, errOut, code := e.tknockd(cmd, "--config", cfg)
		if code != 0 || !strings.Contains(out, "daemon: last reload of tknockd") || !strings.Contains(out, "mallory.uri") {
			t.Errorf("tknockd %s: exit %d, stdout:\n%s\nstderr:\n%s\nwant the failed reload, naming mallory.uri", cmd, code, out, errOut)
		}
	}

	// A restart with the bad file still there: the daemon starts, names
	// the file, and alice gets in.
	d.stop()
	d = e.startDaemon(cfg)
	if got := d.since(0, isEvent("user_rejected")); len(got) != 1 || !strings.Contains(got[0].raw, "mallory.uri") {
		t.Errorf("start with a bad users file: user_rejected lines %v, want one naming mallory.uri", got)
	}
	if out, _, _ := e.tknockd("check-config", "--config", cfg); !strings.Contains(out, "started WITH ERRORS") || !strings.Contains(out, "mallory.uri") {
		t.Errorf("check-config after a start with a bad users file:\n%s\nwant the start's errors, naming mallory.uri", out)
	}
	m = d.mark()
	e.knock(alice, "ssh")
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice after the restart", isOpen("alice", "ssh")); err != nil {
		t.Fatal(err)
	}
	e.mustConnect(e.client, sshPort)
}

// TestIdleMemory: the daemon as shipped (default capacities, the
// prefilter, one user) stays within 24 MiB of resident memory when idle,
// read from /proc/PID/status as an administrator would. The tracker's
// state comes as sources come, up to its cap (knockbench's memory part
// shows the peak under a flood).
func TestIdleMemory(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "nft")
	e := newEnv(t, v4)
	e.enroll("alice", params{Proto: inet.TCP})
	d := e.startDaemon(e.writeConfig(config{DropKnocks: ptr(true)}))
	time.Sleep(2 * time.Second) // the start's garbage returned, the runtime settled
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var rss int
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &rss)
		}
	}
	t.Logf("idle tknockd: VmRSS %d kB", rss)
	if rss == 0 || rss > 24<<10 {
		t.Errorf("idle tknockd: VmRSS %d kB, want 1..%d kB", rss, 24<<10)
	}
}

// TestNotify runs the real daemon with a fake NOTIFY_SOCKET, a unixgram
// socket the test reads, as systemd's Type=notify would: READY=1 when it
// is ready; at a reload RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC,
// within this test's reading of it), then READY=1 with the result in
// STATUS=, a failure named.
func TestNotify(t *testing.T) {
	t.Parallel()
	nstest.RequireTool(t, "nft")
	e := newEnv(t, v4)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	cfg := e.writeConfig(config{DropKnocks: ptr(true)})
	sock := filepath.Join(e.dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func(what string) string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return string(buf[:n])
	}
	e.daemonEnv = []string{"NOTIFY_SOCKET=" + sock}
	d := e.startDaemon(cfg)
	if got := next("READY=1"); got != "READY=1\nSTATUS=start ok" {
		t.Errorf("at start: %q, want READY=1 and the status", got)
	}

	bad := filepath.Join(filepath.Dir(alice.serverFile), "mallory.uri")
	os.WriteFile(bad, []byte("otpauth://totp/tknock:mallory?secret=NOTBASE32!&tknock=1\n"), 0o600)
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	before := ts.Nano() / 1000
	d.signal(syscall.SIGHUP)
	got := next("RELOADING=1")
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := ts.Nano() / 1000
	var usec int64
	if _, err := fmt.Sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%d", &usec); err != nil || usec < before || usec > after {
		t.Errorf("at a reload: %q, want RELOADING=1 and MONOTONIC_USEC in %d..%d", got, before, after)
	}
	if got := next("READY=1 after the reload"); !strings.HasPrefix(got, "READY=1\nSTATUS=reload failed: ") || !strings.Contains(got, "mallory.uri") {
		t.Errorf("after a reload with a bad users file: %q, want READY=1 and a status naming mallory.uri", got)
	}
}
