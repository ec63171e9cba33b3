package client

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

func TestKnockFamilies(t *testing.T) {
	e := testEnrollment(t, "alice", "ssh.example.com", inet.TCP)
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	for _, tc := range []struct {
		name  string
		req   Request
		noV6  bool
		natV4 bool // the IPv4 route leaves from a private address, and STUN fails
		addrs []netip.Addr
		err   string
	}{
		{name: "both families", addrs: []netip.Addr{v6, v4}},
		{name: "-4", req: Request{Family: IPv4}, addrs: []netip.Addr{v4}},
		{name: "-6", req: Request{Family: IPv6}, addrs: []netip.Addr{v6}},
		{name: "no IPv6 route", noV6: true, addrs: []netip.Addr{v4}},
		{name: "-6 without an IPv6 route", req: Request{Family: IPv6}, noV6: true, err: "host ssh.example.com (2001:db8::10): no route from this machine"},
		{name: "source picks its family", req: Request{Source: netip.MustParseAddr("203.0.113.9")}, addrs: []netip.Addr{v4}},
		{name: "-6 on an IPv4-only host", req: Request{Host: "ssh4.example.com", Family: IPv6}, err: "host ssh4.example.com has no IPv6 address (it has [192.0.2.10])"},
		{name: "IPv4 behind NAT without STUN", natV4: true, addrs: []netip.Addr{v6}, err: "IPv4: this machine's address 192.168.1.20"},
		{name: "only IPv4, behind NAT without STUN", req: Request{Family: IPv4}, natV4: true, err: "this machine's address 192.168.1.20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNet()
			f.noV6 = tc.noV6
			if tc.natV4 {
				f.src4 = netip.MustParseAddr("192.168.1.20")
			}
			k := f.knocker(time.Now)
			k.Gap = 0
			tc.req.Enrollment = e
			rs, err := k.KnockFamilies(t.Context(), tc.req)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Errorf("KnockFamilies error = %v, want one starting %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var got []netip.Addr
			for _, r := range rs {
				got = append(got, r.Addr)
				src := f.src4
				if r.Addr.Is6() {
					src = f.src6
				}
				if tc.req.Source.IsValid() {
					src = tc.req.Source
				}
				if r.Source != src || r.Knocks != e.Length {
					t.Errorf("%v: %d knocks from %v, want %d from %v", r.Addr, r.Knocks, r.Source, e.Length, src)
				}
			}
			if len(got) != len(tc.addrs) || len(got) > 0 && got[0] != tc.addrs[0] || len(got) > 1 && got[1] != tc.addrs[1] {
				t.Errorf("knocked at %v, want %v", got, tc.addrs)
			}
			if n := len(f.knocks); n != len(tc.addrs)*e.Length {
				t.Errorf("%d knocks sent, want %d", n, len(tc.addrs)*e.Length)
			}
		})
	}
}

// TestWaitAny: the first address to accept wins; the others are given up.
func TestWaitAny(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := netip.MustParseAddrPort(ln.Addr().String())
	closed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), open.Port())
	c, dst, _, err := WaitAny(t.Context(), []netip.AddrPort{closed, open}, time.Minute, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if dst != open {
		t.Errorf("WaitAny connected to %v, want %v", dst, open)
	}
	_, _, _, err = WaitAny(t.Context(), []netip.AddrPort{closed, closed}, 300*time.Millisecond, 0, nil)
	if err == nil || !strings.Contains(err.Error(), ErrNotOpen.Error()) {
		t.Errorf("WaitAny on closed ports = %v, want ErrNotOpen", err)
	}
}
