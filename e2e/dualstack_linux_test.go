package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// dualName is the host name of the server in TestDualStack: an A and an
// AAAA record, from a hosts file.
const dualName = "knock.e2e.test"

// hostsFile gives ns its own /etc/hosts: `ip netns exec`, which runs every
// command of the tests inside a namespace, bind-mounts the files of
// /etc/netns/NAME over those of /etc in a mount namespace of its own, so
// the real binaries resolve names through the system's ordinary path and
// nothing outside the namespace's commands sees the file.
func hostsFile(t *testing.T, ns *nstest.NS, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dialAddr connects from inside ns to dst and checks one echo.
func dialAddr(ns *nstest.NS, dst netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", dst.String(), timeout)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, "hello")
}

// TestDualStack: the server's name has an A and an AAAA record and the
// client reaches both families. `tknock NAME` knocks over both, so a
// connection by name opens whichever family the program (ssh) picks; -4
// knocks over IPv4 only; ssh-proxy -6 knocks and connects over IPv6.
func TestDualStack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, v4)
	srv4, srv6 := addrs[v4].server, addrs[v6].server
	hostsFile(t, e.client, "127.0.0.1 localhost\n::1 localhost\n"+srv4.String()+" "+dualName+"\n"+srv6.String()+" "+dualName+"\n")
	e.serve(sshPort)
	e.serve(webPort)
	alice := e.enroll("alice", params{Proto: inet.TCP, Services: []string{"ssh", "web"}})
	d := e.startDaemon(e.writeConfig(config{Services: map[string][]string{"ssh": {"tcp/2222"}, "web": {"tcp/8080"}}}))

	mustOpen := func(ns *nstest.NS, dst netip.AddrPort) {
		t.Helper()
		if err := dialAddr(ns, dst, connectTimeout); err != nil {
			t.Errorf("connect from the %s to %v: %v; want it open", e.nsName(ns), dst, err)
		}
	}
	mustBeClosed := func(ns *nstest.NS, dst netip.AddrPort) {
		t.Helper()
		err := dialAddr(ns, dst, refuseTimeout)
		var nerr net.Error
		if err == nil || !errors.As(err, &nerr) || !nerr.Timeout() {
			t.Errorf("connect from the %s to %v: %v; want a timeout (dropped)", e.nsName(ns), dst, err)
		}
	}
	ssh4, ssh6 := netip.AddrPortFrom(srv4, sshPort), netip.AddrPortFrom(srv6, sshPort)
	web4, web6 := netip.AddrPortFrom(srv4, webPort), netip.AddrPortFrom(srv6, webPort)
	for _, dst := range []netip.AddrPort{ssh4, ssh6, web4, web6} {
		mustBeClosed(e.client, dst)
	}

	// tknock NAME: both families.
	m := d.mark()
	_, errOut, err := e.tknockResult("-v", "knock", "--enrollment", alice.clientFile, dualName, "ssh")
	if err != nil {
		t.Fatalf("tknock %s: %v\n%s", dualName, err, errOut)
	}
	for _, src := range []netip.Addr{addrs[v6].client, addrs[v4].client} {
		if _, err := d.waitFrom(m, 5*time.Second, "an opening for "+src.String(), func(l logLine) bool {
			return isOpen("alice", "ssh")(l) && l.str("src") == src.String()
		}); err != nil {
			t.Errorf("%v\n-v output:\n%s", err, errOut)
		}
	}
	mustOpen(e.client, ssh4)
	mustOpen(e.client, ssh6)
	mustBeClosed(e.stranger, ssh4)
	mustBeClosed(e.stranger, ssh6)

	// -4: IPv4 only.
	m = d.mark()
	e.tknock("knock", "-4", "--enrollment", alice.clientFile, dualName, "web")
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for web", isOpen("alice", "web")); err != nil {
		t.Fatal(err)
	}
	mustOpen(e.client, web4)
	mustBeClosed(e.client, web6)
	if opens := d.since(m, isEvent("open")); len(opens) != 1 {
		t.Errorf("tknock -4: %d openings, want 1", len(opens))
	}

	// ssh-proxy -6: knocks over IPv6 and connects over it.
	m = d.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.client.Command(ctx, tknockBin(t), "ssh-proxy", "-6", "--enrollment", alice.clientFile, "--service", "web", dualName, "8080")
	cmd.Env = append(cmd.Environ(), "TKNOCK_CONFIG_DIR="+filepath.Join(e.dir, "client-config"), "TKNOCK_CACHE_DIR="+filepath.Join(e.dir, "client-cache"))
	var out, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader("through the proxy\n"), &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tknock ssh-proxy -6: %v\n%s", err, stderr.String())
	}
	if out.String() != "through the proxy\n" {
		t.Errorf("ssh-proxy -6 piped back %q, want the echo", out.String())
	}
	open, err := d.waitFrom(m, 5*time.Second, "an opening for web", isOpen("alice", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if got := open.str("src"); got != addrs[v6].client.String() {
		t.Errorf("ssh-proxy -6 opened for %s, want the client's IPv6 address %v", got, addrs[v6].client)
	}
	mustOpen(e.client, web6)
}
