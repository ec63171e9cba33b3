package client

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
)

func TestPrivate(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.254", true},
		{"172.32.0.1", false},
		{"172.15.255.255", false},
		{"192.168.1.20", true},
		{"192.169.0.1", false},
		{"100.64.0.1", true},
		{"100.127.255.254", true},
		{"100.63.255.255", false},
		{"100.128.0.1", false},
		{"169.254.3.4", true},
		{"::ffff:192.168.1.20", true},
		{"::ffff:198.51.100.7", false},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"2001:db8::1", false},
		{"2a00:1450::1", false},
		{"8.8.8.8", false},
		{"192.0.2.1", false}, // documentation ranges stand for public addresses in tests
		{"203.0.113.9", false},
		{"127.0.0.1", false},
		{"::1", false},
	} {
		if got := Private(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Private(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestBehindNAT(t *testing.T) {
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"192.168.1.20", "203.0.113.1", true},
		{"100.64.3.4", "203.0.113.1", true},
		{"fd00::20", "2001:db8::1", true},
		{"198.51.100.7", "203.0.113.1", false},   // a public address: no NAT
		{"192.168.1.20", "192.168.1.1", false},   // a server on the LAN
		{"100.101.102.103", "100.64.0.9", false}, // a tailnet or VPN peer
		{"10.0.0.2", "172.16.0.1", false},
		{"127.0.0.1", "127.0.0.1", false},
		{"192.168.1.20", "127.0.0.1", false},
	} {
		if got := behindNAT(netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)); got != tc.want {
			t.Errorf("behindNAT(%s, %s) = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
}

func TestNATCache(t *testing.T) {
	c := &NATCache{Path: filepath.Join(t.TempDir(), "cache", NATCacheFile)}
	now := time.Unix(1_800_000_000, 0)
	home := NATKey(netip.MustParseAddr("192.168.1.20"))
	cafe := NATKey(netip.MustParseAddr("10.7.0.33"))
	if _, ok := c.Get(home, now); ok {
		t.Fatal("Get from a missing file found an entry")
	}
	e := NATEntry{Mapped: netip.MustParseAddr("203.0.113.50"), Server: "stun.example.net:3478", At: now.Unix()}
	if err := c.Put(home, e, now); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(c.Path); err != nil || fi.Mode().Perm() != 0o600 && !isWindows {
		t.Errorf("cache file: %v, %v; want mode 0600", fi, err)
	}
	if got, ok := c.Get(home, now.Add(NATTTL-time.Second)); !ok || got != e {
		t.Errorf("Get before the TTL = %+v, %v; want %+v", got, ok, e)
	}
	if _, ok := c.Get(cafe, now); ok {
		t.Error("Get for another network found the home network's answer")
	}
	if _, ok := c.Get(home, now.Add(NATTTL)); ok {
		t.Error("Get at the TTL found the entry; want it expired")
	}
	if _, ok := c.Get(home, now.Add(-time.Minute)); ok {
		t.Error("Get with the clock set back found an entry from the future")
	}
	// Put drops expired entries.
	later := now.Add(NATTTL + time.Second)
	if err := c.Put(cafe, NATEntry{Mapped: netip.MustParseAddr("198.51.100.9"), Server: "s:1", At: later.Unix()}, later); err != nil {
		t.Fatal(err)
	}
	if n := len(c.read().Entries); n != 1 {
		t.Errorf("after Put, %d entries, want 1 (the expired one dropped)", n)
	}
	// A corrupt file is an empty cache.
	if err := os.WriteFile(c.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(cafe, later); ok {
		t.Error("Get from a corrupt file found an entry")
	}
}

// fakeMapper answers STUN questions from a table, and counts them.
type fakeMapper struct {
	mapped netip.Addr
	err    error
	asked  [][]string
	locals []netip.Addr
}

func (f *fakeMapper) Mapped(_ context.Context, servers []string, local netip.Addr) (netip.Addr, string, error) {
	f.asked = append(f.asked, servers)
	f.locals = append(f.locals, local)
	if f.err != nil {
		return netip.Addr{}, "", f.err
	}
	return f.mapped, servers[0], nil
}

// TestKnockBehindNAT: a private outbound address towards a public server
// is replaced by the STUN answer, which the cache keeps for the network.
func TestKnockBehindNAT(t *testing.T) {
	f := newFakeNet()
	f.src4 = netip.MustParseAddr("192.168.1.20")
	m := &fakeMapper{mapped: netip.MustParseAddr("203.0.113.50")}
	now := time.Unix(1_800_000_010, 0)
	k := f.knocker(func() time.Time { return now })
	k.Gap = 0
	k.STUN = m
	k.NATCache = &NATCache{Path: filepath.Join(t.TempDir(), NATCacheFile)}
	e := testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)
	e.STUN = []string{"stun.example.net:3478"}

	r, err := k.Knock(t.Context(), Request{Enrollment: e, STUN: []string{"flag.example.net:3478"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != m.mapped || r.From != "stun server flag.example.net:3478" {
		t.Errorf("source %v from %q, want %v from the first server", r.Source, r.From, m.mapped)
	}
	if diff := cmp.Diff([][]string{{"flag.example.net:3478", "stun.example.net:3478"}}, m.asked); diff != "" {
		t.Errorf("servers asked (-want +got):\n%s", diff)
	}
	if m.locals[0] != f.src4 {
		t.Errorf("STUN asked from %v, want the knock's outbound address %v", m.locals[0], f.src4)
	}
	if diff := cmp.Diff(wantSequence(t, e, "ssh", r.Window, m.mapped), f.ports()); diff != "" {
		t.Errorf("ports knocked (-want +got), want the sequence of the mapped address:\n%s", diff)
	}

	// Within the TTL, the same network asks no server.
	now = now.Add(time.Minute)
	r, err = k.Knock(t.Context(), Request{Enrollment: e})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.asked) != 1 || r.Source != m.mapped || !strings.HasPrefix(r.From, "stun cache (server flag.example.net:3478, 1m0s old)") {
		t.Errorf("second knock: source %v from %q after %d questions; want the cached answer", r.Source, r.From, len(m.asked))
	}
	// Another network asks again.
	f.src4 = netip.MustParseAddr("10.1.2.3")
	if _, err := k.Knock(t.Context(), Request{Enrollment: e}); err != nil {
		t.Fatal(err)
	}
	if len(m.asked) != 2 || m.locals[1] != f.src4 {
		t.Errorf("on another network: %d questions (from %v), want a second one from %v", len(m.asked), m.locals, f.src4)
	}
}

func TestKnockBehindNATErrors(t *testing.T) {
	e := testEnrollment(t, "alice", "ssh4.example.com", inet.TCP)
	f := newFakeNet()
	f.src4 = netip.MustParseAddr("100.64.7.8")
	m := &fakeMapper{err: errors.New("stun server s:1: no answer")}
	k := f.knocker(time.Now)
	k.STUN = m

	_, err := k.Knock(t.Context(), Request{Enrollment: e})
	if !IsNoSTUN(err) || !strings.Contains(err.Error(), "100.64.7.8 towards 192.0.2.10 is private") ||
		!strings.Contains(err.Error(), "--stun HOST:PORT") || !strings.Contains(err.Error(), "--source") {
		t.Errorf("Knock behind NAT without STUN servers = %v; want a NoSTUNError naming the fixes", err)
	}
	_, err = k.Knock(t.Context(), Request{Enrollment: e, STUN: []string{"s:1"}})
	if err == nil || !strings.Contains(err.Error(), "no STUN server told the public one: stun server s:1: no answer") {
		t.Errorf("Knock with a failing STUN server = %v", err)
	}
	if len(f.knocks) != 0 {
		t.Errorf("%d knocks sent despite the errors", len(f.knocks))
	}
	// --source wins: no question, no error.
	r, err := k.Knock(t.Context(), Request{Enrollment: e, Source: netip.MustParseAddr("198.51.100.1")})
	if err != nil || r.From != FromFlag || len(m.asked) != 1 {
		t.Errorf("Knock with --source behind NAT = %+v, %v after %d questions; want the given source and no new question", r, err, len(m.asked))
	}
	// A server on the LAN sees the private address: no STUN.
	f.names["lan.example"] = []netip.Addr{netip.MustParseAddr("100.64.0.1")}
	r, err = k.Knock(t.Context(), Request{Enrollment: e, Host: "lan.example"})
	if err != nil || r.Source != f.src4 || r.From != FromOutbound {
		t.Errorf("Knock at a private server = %+v, %v; want the outbound address", r, err)
	}
}
