package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/nft"
)

// TestDaemonSlowFirewall: while the firewall is held up (a slow nftables
// commit), the capture goes on: knocks are read and matched, rejects
// logged; openings wait in a bounded queue, and one that finds it full is
// dropped, logged and counted, never waited for. When the firewall comes
// back, the queued ones are granted.
func TestDaemonSlowFirewall(t *testing.T) { synctest.Test(t, testDaemonSlowFirewall) }

func testDaemonSlowFirewall(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	awayFromBoundary(alice.Period, 8*time.Second)
	h := startHarnessDeps(t, "", func(dp *deps) { dp.grantQueue = 2 }, alice)
	hold, release := make(chan netip.Addr), make(chan struct{})
	h.fw.mu.Lock()
	h.fw.hold, h.fw.release = hold, release
	h.fw.mu.Unlock()

	srcs := []netip.Addr{
		netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12"),
		netip.MustParseAddr("192.0.2.13"), netip.MustParseAddr("192.0.2.14"),
	}
	h.knock(alice, "ssh", 0, srcs[0])
	if got := <-hold; got != srcs[0] { // the firewall goroutine is now stuck in Allow
		t.Fatalf("first held grant for %v, want %v", got, srcs[0])
	}
	m := h.mark()
	for _, src := range srcs[1:] { // two fill the queue, the third finds it full
		h.knock(alice, "ssh", 0, src)
	}
	l := h.waitLogFrom(m, "a dropped opening", func(l map[string]any) bool { return l["reason"] == "queue_full" })
	if l["event"] != "open_failed" || l["src"] != srcs[3].String() {
		t.Errorf("dropped opening: %v, want open_failed for %v", l, srcs[3])
	}
	// The capture still runs: a replay (past gap_max, so not taken for the
	// client's later rounds) is read, matched and logged.
	time.Sleep(h.cfg.GapMax + time.Second)
	h.knock(alice, "ssh", 0, srcs[1])
	h.waitLogFrom(m, "a replay", func(l map[string]any) bool { return l["reason"] == "replay" })
	if d := h.fw.matching("allow "); len(d) != 0 {
		t.Errorf("grants while the firewall is held: %q", d)
	}
	h.fw.mu.Lock()
	h.fw.hold = nil
	h.fw.mu.Unlock()
	close(release)
	h.waitAllow(3)
	want := []string{"allow 192.0.2.11 ssh tcp/22 30s", "allow 192.0.2.12 ssh tcp/22 30s", "allow 192.0.2.13 ssh tcp/22 30s"}
	if got := h.fw.matching("allow "); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("grants after the firewall came back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h.nextWindow() // the counters of events are published per window
	h.wantMetrics("tknock_opening_errors_total 1")
}

// TestDaemonFirewallLost: when the firewall is lost for good (its netlink
// socket could not be reopened: nft.ErrClosed), the daemon stops with an
// error, so that systemd restarts it, rather than running on deaf.
func TestDaemonFirewallLost(t *testing.T) { synctest.Test(t, testDaemonFirewallLost) }

func testDaemonFirewallLost(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	awayFromBoundary(alice.Period, 8*time.Second)
	h := startHarness(t, "", alice)
	h.fw.mu.Lock()
	h.fw.failAllow = fmt.Errorf("nft: allow 203.0.113.7 tcp/22: reopen netlink socket: %w", nft.ErrClosed)
	h.fw.mu.Unlock()
	h.knock(alice, "ssh", 0, client)
	select {
	case err := <-h.done:
		if !errors.Is(err, nft.ErrClosed) || !strings.Contains(err.Error(), "systemd restarts") {
			t.Errorf("runDaemon = %v, want the lost firewall", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the daemon runs on without a firewall")
	}
	h.done <- nil // for the harness's cleanup
}

// notes records what the daemon tells systemd.
type notes struct {
	mu sync.Mutex
	ms []string
}

func (n *notes) notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ms = append(n.ms, s)
	return nil
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.ms...)
}

// TestDaemonReloadReports: the start and each reload end with READY=1 and
// a STATUS saying how it went, a reload starts with RELOADING=1 and
// MONOTONIC_USEC; the state file holds the latest result, with every
// problem. A bad users file at start is left out: the others are loaded.
func TestDaemonReloadReports(t *testing.T) { synctest.Test(t, testDaemonReloadReports) }

func testDaemonReloadReports(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	awayFromBoundary(alice.Period, 8*time.Second)
	var n notes
	dir := t.TempDir()
	h := startHarnessDeps(t, "", func(dp *deps) { dp.notify = n.notify; dp.stateDir = dir }, alice)
	if got := n.all(); len(got) != 1 || got[0] != "READY=1\nSTATUS=start ok" {
		t.Errorf("notifications at start: %q", got)
	}
	st, err := ReadState(dir, h.cfg)
	if err != nil || !st.OK || st.Event != "start" || st.Users != 1 || st.PID != os.Getpid() || st.Seq != 0 {
		t.Errorf("state after start: %+v, %v", st, err)
	}

	os.WriteFile(config.UserFile(h.cfg.UsersDir, "mallory"), []byte("otpauth://totp/tknock:mallory?secret=NOT!&tknock=1\n"), 0o600)
	m := h.mark()
	h.hup <- os.Interrupt
	h.waitLogFrom(m, "a reload error", event("reload_failed"))
	h.waitLogFrom(m, "the rejected file", func(l map[string]any) bool {
		return l["event"] == "user_rejected" && strings.Contains(fmt.Sprint(l["error"]), "mallory.uri")
	})
	got := n.all()
	if len(got) != 3 || !strings.HasPrefix(got[1], "RELOADING=1\nMONOTONIC_USEC=") ||
		!strings.HasPrefix(got[2], "READY=1\nSTATUS=reload failed: ") || !strings.Contains(got[2], "mallory.uri") {
		t.Errorf("notifications after a reload with a bad users file: %q", got)
	}
	st, err = ReadState(dir, h.cfg)
	if err != nil || st.OK || st.Event != "reload" || st.Seq != 1 || st.Users != 1 || len(st.Errors) != 1 ||
		!strings.Contains(st.Errors[0], "mallory.uri") || !strings.Contains(st.Applied, "without the rejected users files") {
		t.Errorf("state after a reload with a bad users file: %+v, %v", st, err)
	}
	if s := st.Summary(); !strings.Contains(s, "last reload of tknockd") || !strings.Contains(s, "FAILED") || !strings.Contains(s, "\n  "+filepath.Join(h.cfg.UsersDir, "mallory.uri")) {
		t.Errorf("summary:\n%s", s)
	}
	// alice still opens: the good file was loaded.
	h.knock(alice, "ssh", 0, client)
	h.waitAllow(1)

	os.Remove(config.UserFile(h.cfg.UsersDir, "mallory"))
	m = h.mark()
	h.hup <- os.Interrupt
	h.waitLogFrom(m, "a reload line", event("reload"))
	st, err = ReadState(dir, h.cfg)
	if err != nil || !st.OK || st.Seq != 2 || len(st.Errors) != 0 {
		t.Errorf("state after a good reload: %+v, %v", st, err)
	}
	if got := n.all(); got[len(got)-1] != "READY=1\nSTATUS=reload ok" {
		t.Errorf("last notification after a good reload: %q", got[len(got)-1])
	}
}

// TestSdNotify sends to a fake NOTIFY_SOCKET, a unixgram socket the test
// reads, by path and by abstract name.
func TestSdNotify(t *testing.T) {
	if err := os.Unsetenv("NOTIFY_SOCKET"); err != nil {
		t.Fatal(err)
	}
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("sdNotify without NOTIFY_SOCKET: %v, want nothing done", err)
	}
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@tknock-test-" + filepath.Base(t.TempDir())} {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		t.Setenv("NOTIFY_SOCKET", name)
		msg := "RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec()
		if err := sdNotify(msg); err != nil {
			t.Fatalf("sdNotify to %s: %v", name, err)
		}
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != msg {
			t.Errorf("%s received %q, %v, want %q", name, buf[:k], err, msg)
		}
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := sdNotify("READY=1"); err == nil || !strings.Contains(err.Error(), "NOTIFY_SOCKET") {
		t.Errorf("sdNotify to a relative path: %v, want an error naming NOTIFY_SOCKET", err)
	}
}

// TestLockInstance: a second lock of the same instance in this network
// namespace fails with a message naming the holder's pid and what to do;
// another instance, or the same one after Close, locks fine.
func TestLockInstance(t *testing.T) {
	inst := "table inet t" + filepath.Base(t.TempDir())
	l, err := lockInstance(inst)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockInstance(inst)
	want := fmt.Sprintf("another tknockd (pid %d) already runs %s in this network namespace: stop it first", os.Getpid(), inst)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second lock: %v, want %q", err, want)
	}
	l2, err := lockInstance(inst + "x")
	if err != nil {
		t.Errorf("lock of another instance: %v", err)
	} else {
		l2.Close()
	}
	l.Close()
	l3, err := lockInstance(inst)
	if err != nil {
		t.Errorf("lock after Close: %v", err)
	} else {
		l3.Close()
	}
}
