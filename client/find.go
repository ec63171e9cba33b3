package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// FindResolved is Find that also matches addresses: when no profile's name
// or host is arg, it resolves arg (an address stands for itself) and the
// profiles' hosts through r, and returns the one profile whose host has
// one of arg's addresses, so that `ssh 198.51.100.1` with tknock as its
// ProxyCommand finds the profile of ssh.example.com. Nothing is resolved
// when Find matches, and a host that does not resolve matches nothing.
// No match is Find's *UnknownProfileError.
func (s *Store) FindResolved(ctx context.Context, arg string, r Resolver) (*Profile, error) {
	p, err := s.Find(arg)
	var unknown *UnknownProfileError
	if arg == "" || r == nil || !errors.As(err, &unknown) {
		return p, err
	}
	want := lookup(ctx, r, arg)
	if len(want) == 0 {
		return nil, err
	}
	ps, _ := s.List() // unreadable profiles cannot match; Get reports them by name
	var match []*Profile
	for _, p := range ps {
		if p.Host == "" {
			continue
		}
		if slices.ContainsFunc(lookup(ctx, r, p.Host), func(a netip.Addr) bool { return slices.Contains(want, a) }) {
			match = append(match, p)
		}
	}
	switch len(match) {
	case 0:
		return nil, err
	case 1:
		return match[0], nil
	}
	return nil, fmt.Errorf("%s is an address of the hosts of profiles %s: name one of them", arg, profileNames(match))
}

// profileNames returns the names of ps, comma separated.
func profileNames(ps []*Profile) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// lookup returns host's addresses, unmapped: host itself when it is an
// address, else what r resolves it to (nothing when it does not resolve).
func lookup(ctx context.Context, r Resolver, host string) []netip.Addr {
	if a, err := netip.ParseAddr(normalHost(host)); err == nil {
		return []netip.Addr{a.Unmap().WithZone("")}
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	return addrs
}
