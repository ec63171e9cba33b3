package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// OutboundAddr returns the local address the system would send from to
// reach dst, without sending anything: connecting a UDP socket only chooses
// a route. An IPv4-mapped result is unmapped.
func OutboundAddr(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, hidePort(err)
	}
	defer c.Close()
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("local address %v: not a UDP address", c.LocalAddr())
	}
	return la.AddrPort().Addr().Unmap(), nil
}

// resolve returns the addresses of host: the address itself for an IP
// literal (IPv6 with or without brackets), else a DNS look-up.
func resolve(ctx context.Context, r Resolver, host string) ([]netip.Addr, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("host %s: cannot resolve the name: %w (check its spelling, the DNS, and the network)", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("host %s: the name has no address", host)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// sameFamily reports whether a and b are both IPv4 or both IPv6.
func sameFamily(a, b netip.Addr) bool { return a.Unmap().Is4() == b.Unmap().Is4() }

// target picks the address of host to knock at and the source address to
// bind into the sequence: the first address of host (of req.Family, and of
// the family of req.Source when it is set) with a route, and req.Source or
// else the source that k.source chooses for the outbound address towards
// it. from says where the source came from.
func (k *Knocker) target(ctx context.Context, host string, req Request) (dst, src netip.Addr, from string, err error) {
	source := req.Source
	addrs := req.addrs
	if addrs == nil {
		if addrs, err = resolve(ctx, k.resolver(), host); err != nil {
			return dst, src, "", err
		}
	}
	var routeErr error
	matched := 0
	for _, a := range addrs {
		if source.IsValid() && !sameFamily(a, source) || !req.Family.match(a) {
			continue
		}
		matched++
		out, err := k.route()(a)
		if err != nil {
			if routeErr == nil {
				routeErr = fmt.Errorf("host %s (%v): unreachable: %w", host, a, err)
			}
			continue
		}
		if source.IsValid() {
			return a, source.Unmap(), FromFlag, nil
		}
		var servers []string
		if req.Enrollment != nil {
			servers = joinServers(req.STUN, req.Enrollment.STUN)
		} else {
			servers = joinServers(req.STUN)
		}
		src, from, err := k.source(ctx, out, a, servers)
		if err != nil {
			return a, src, "", err
		}
		return a, src, from, nil
	}
	if matched == 0 {
		if source.IsValid() {
			return dst, src, "", fmt.Errorf("host %s has no %s address to match the source address %v (it has %v)", host, familyName(source), source, addrs)
		}
		return dst, src, "", fmt.Errorf("host %s has no %v address (it has %v)", host, req.Family, addrs)
	}
	return dst, src, "", routeErr
}
