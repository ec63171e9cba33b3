package main

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
)

// fakeSTUN answers every question with one address and records the
// servers asked.
type fakeSTUN struct {
	mapped netip.Addr
	asked  [][]string
}

func (f *fakeSTUN) Mapped(_ context.Context, servers []string, _ netip.Addr) (netip.Addr, string, error) {
	f.asked = append(f.asked, servers)
	return f.mapped, servers[0], nil
}

// homeRoute routes IPv4 from a home network's private address.
func homeRoute(dst netip.Addr) (netip.Addr, error) {
	if dst.Is4() {
		return netip.MustParseAddr("192.168.1.20"), nil
	}
	return route(dst)
}

func TestKnockBehindNATCommand(t *testing.T) {
	e := newEnv(t)
	e.route = homeRoute
	st := &fakeSTUN{mapped: netip.MustParseAddr("203.0.113.50")}
	e.stun = st
	en := enrollment(t, "ssh.example.com", inet.TCP)
	e.mustRun("enroll", "--uri", en.URI(), "--name", "work")

	// No STUN server anywhere: the error says what is wrong and the fixes.
	code, _, errOut := e.run("work")
	for _, want := range []string{"192.168.1.20 towards 192.0.2.10 is private", "--stun HOST:PORT", "stun=", "--source"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("knock behind NAT without STUN: exit %d, stderr %q; want 1 and %q", code, errOut, want)
		}
	}
	if len(e.net.knocks) != 0 {
		t.Errorf("%d knocks sent without a source address", len(e.net.knocks))
	}

	// --stun: the knock is bound to the mapped address, and -v says so.
	code, _, errOut = e.run("-v", "work", "--stun", "STUN.example.net:3478")
	if code != 0 {
		t.Fatalf("knock --stun: exit %d: %s", code, errOut)
	}
	if diff := cmp.Diff(sent(sequence(t, en, "ssh", e.now, false, "203.0.113.50")), e.net.ports()); diff != "" {
		t.Errorf("knock --stun knocked (-want +got):\n%s", diff)
	}
	if !strings.Contains(errOut, "source=203.0.113.50") || !strings.Contains(errOut, `source_from="stun server stun.example.net:3478"`) {
		t.Errorf("-v does not show the source and where it came from:\n%s", errOut)
	}

	// A profile with STUN servers (tknock enroll --stun): the cached
	// answer serves the next knock on this network.
	e.net.reset()
	e.mustRun("enroll", "--uri", en.URI(), "--name", "work", "--force", "--stun", "stun.example.org:3478", "--stun", "[2001:db8::53]:3478")
	code, _, errOut = e.run("-v", "work")
	if code != 0 || !strings.Contains(errOut, "stun cache (server stun.example.net:3478") || len(st.asked) != 1 {
		t.Errorf("knock within the cache's TTL: exit %d, %d questions, stderr:\n%s", code, len(st.asked), errOut)
	}
	os.RemoveAll(e.cache)
	e.net.reset()
	e.mustRun("work")
	if diff := cmp.Diff([]string{"stun.example.org:3478", "[2001:db8::53]:3478"}, st.asked[len(st.asked)-1]); diff != "" {
		t.Errorf("profile's STUN servers asked (-want +got):\n%s", diff)
	}
}

func TestKnockFamiliesCommand(t *testing.T) {
	e := newEnv(t)
	e.net.names["dual.example.com"] = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	en := enrollment(t, "dual.example.com", inet.TCP)
	e.mustRun("enroll", "--uri", en.URI(), "--name", "dual")
	for _, tc := range []struct {
		args []string
		want []string // addresses knocked, in order
	}{
		{[]string{"dual"}, []string{"2001:db8::10", "192.0.2.10"}},
		{[]string{"dual", "-4"}, []string{"192.0.2.10"}},
		{[]string{"dual", "-6"}, []string{"2001:db8::10"}},
		{[]string{"dual", "--ipv4"}, []string{"192.0.2.10"}},
		{[]string{"dual", "--source", "203.0.113.9"}, []string{"192.0.2.10"}},
	} {
		e.net.reset()
		os.RemoveAll(e.cache)
		e.mustRun(tc.args...)
		var got []string
		for i, k := range e.net.knocks {
			if i%(en.Length*client.DefaultRounds) == 0 {
				got = append(got, k.Addr().String())
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || len(e.net.knocks) != len(tc.want)*en.Length*client.DefaultRounds {
			t.Errorf("tknock %v: knocked at (-want +got):\n%s (%d knocks)", tc.args, diff, len(e.net.knocks))
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dual", "-4", "-6"}, "--ipv4 and --ipv6 can't be used together"},
		{[]string{"dual", "--stun", "stun.example.net"}, `--stun "stun.example.net": want HOST:PORT`},
		{[]string{"dual", "--stun", "[2001:db8::1%eth0]:3478"}, `zone`},
		{[]string{"dual", "--host", "ssh.example.com", "-6"}, "host ssh.example.com has no IPv6 address (it has [192.0.2.10])"},
	} {
		code, _, errOut := e.run(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("tknock %v: exit %d, stderr %q; want an error containing %q", tc.args, code, errOut, tc.want)
		}
	}
	code, _, errOut := e.run("enroll", "--uri", en.URI(), "--name", "x", "--stun", "nope")
	if code == 0 || !strings.Contains(errOut, `--stun "nope": want HOST:PORT`) {
		t.Errorf("enroll --stun nope: exit %d, stderr %q", code, errOut)
	}
}
