//go:build linux

// Package nstest creates throwaway network namespaces and veth links for
// tests that need the kernel: nftables, AF_PACKET capture and end-to-end runs.
//
// Every namespace and link a test creates is removed by t.Cleanup. Tests that
// need root call RequireRoot first: it skips with a message on an unprivileged
// machine and fails instead when CI=true, because CI runs as root and a skip
// there would hide a regression.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tknock/tknock/internal/netns"
)

// RequireRoot skips t unless the process is root. With CI=true it fails
// instead of skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, nftables); CI=true, so it fails rather than skips")
	}
	t.Skip("skipping: needs root (network namespaces, nftables); run the tests as root")
}

// RequireTool skips t (or fails when CI=true) when the named program is not on
// PATH.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs %q on PATH; CI=true, so it fails rather than skips (.ci/run installs it)", name)
	}
	t.Skipf("skipping: %q is not installed", name)
}

// NS is a network namespace a test created (see New), with the helpers
// of netns.NS (Command, Run, Do) and test helpers that fail the test.
type NS struct {
	netns.NS
}

// New creates a fresh namespace with its loopback up and registers its
// removal with t.Cleanup. The name is short and random ("tk" + 8 hex
// digits), so parallel tests do not collide and interface names derived
// from it fit IFNAMSIZ.
func New(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	n := &NS{netns.NS{Name: "tk" + hex.EncodeToString(b[:])}}
	n.Path = filepath.Join("/run/netns", n.Name)
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.MustRun(t, "ip", "link", "set", "lo", "up")
	return n
}

// Fd opens the namespace file and returns its descriptor, closed by
// t.Cleanup. Hand it to libraries that take a netns fd (nftables.WithNetNSFd).
func (n *NS) Fd(t testing.TB) int {
	t.Helper()
	f, err := os.Open(n.Path)
	if err != nil {
		t.Fatalf("open netns %s: %v", n.Name, err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Link joins two namespaces with a veth pair, assigns the given addresses
// (CIDR notation, IPv4 or IPv6, e.g. "192.0.2.1/24", "2001:db8:1::1/64"),
// brings both ends up and returns the interface names (in a, in b). IPv6
// duplicate address detection is disabled so addresses are usable at once.
func Link(t testing.TB, a, b *NS, aAddrs, bAddrs []string) (aIf, bIf string) {
	t.Helper()
	aIf, bIf = "v"+a.Name[2:], "v"+b.Name[2:]
	a.MustRun(t, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, side := range []struct {
		ns    *NS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		side.ns.MustRun(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		side.ns.MustRun(t, "sysctl", "-q", "-w", "net.ipv6.conf."+side.ifc+".accept_dad=0")
		for _, addr := range side.addrs {
			side.ns.MustRun(t, "ip", "addr", "add", addr, "dev", side.ifc, "nodad")
		}
		side.ns.MustRun(t, "ip", "link", "set", side.ifc, "up")
	}
	return aIf, bIf
}
