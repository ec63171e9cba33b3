package client

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tknock/tknock/inet"
)

// tableResolver resolves names from a table and counts its lookups.
type tableResolver struct {
	names   map[string][]string
	lookups atomic.Int32
}

func (r *tableResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	var out []netip.Addr
	for _, a := range r.names[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if out == nil {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	return out, nil
}

func TestStoreFindResolved(t *testing.T) {
	s := newStore(t)
	for name, host := range map[string]string{"work": "ssh.example.com", "lab": "lab.example.com", "gone": "gone.example.com",
		"twin1": "twin1.example.com", "twin2": "twin2.example.com", "v6": "2001:db8::5"} {
		if _, err := s.Add(name, testEnrollment(t, "alice", host, inet.TCP), false); err != nil {
			t.Fatal(err)
		}
	}
	r := &tableResolver{names: map[string][]string{
		"ssh.example.com":   {"198.51.100.1", "2001:db8::1"},
		"lab.example.com":   {"198.51.100.2"},
		"alias.example.net": {"198.51.100.2"},
		"twin1.example.com": {"198.51.100.3"},
		"twin2.example.com": {"198.51.100.3"},
	}}
	for _, tc := range []struct{ arg, want, err string }{
		{"198.51.100.1", "work", ""},
		{"[2001:db8::1]", "work", ""},
		{"::ffff:198.51.100.2", "lab", ""},
		{"alias.example.net", "lab", ""},
		{"2001:db8::5", "v6", ""}, // by host, as Find
		{"198.51.100.3", "", "198.51.100.3 is an address of the hosts of profiles twin1, twin2: name one of them"},
		{"198.51.100.99", "", `unknown profile "198.51.100.99": known profiles:`},
		{"nosuch.example.net", "", `unknown profile "nosuch.example.net"`},
	} {
		p, err := s.FindResolved(t.Context(), tc.arg, r)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("FindResolved(%q) = %v, %v; want error %q", tc.arg, p, err, tc.err)
			}
		case err != nil:
			t.Errorf("FindResolved(%q): %v", tc.arg, err)
		case p.Name != tc.want:
			t.Errorf("FindResolved(%q) = %s, want %s", tc.arg, p.Name, tc.want)
		}
	}
	// A name or host that Find matches resolves nothing.
	r.lookups.Store(0)
	for _, arg := range []string{"work", "lab.example.com"} {
		if _, err := s.FindResolved(t.Context(), arg, r); err != nil {
			t.Errorf("FindResolved(%q): %v", arg, err)
		}
	}
	if n := r.lookups.Load(); n != 0 {
		t.Errorf("FindResolved of a profile name and a host made %d lookups, want 0", n)
	}
}
