package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Family is an address family to knock over: zero for any, IPv4 or IPv6.
type Family uint8

// Address families.
const (
	AnyFamily Family = 0
	IPv4      Family = 4
	IPv6      Family = 6
)

// String returns "IPv4", "IPv6" or "any".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "any"
}

func (f Family) match(a netip.Addr) bool {
	switch f {
	case IPv4:
		return a.Unmap().Is4()
	case IPv6:
		return !a.Unmap().Is4()
	}
	return true
}

// KnockFamilies knocks at host once per address family it has and this
// machine has a route for (only req.Family when set, only the family of
// req.Source when that is set), IPv6 first: a client that then connects by
// name (ssh HOST) finds the door open whichever family it picks.
//
// rs holds a Result per family knocked, and per family whose windows were
// both used (Knocks == 0; see Knock). err joins why the other families were
// not knocked; a family that has no route is left out silently when
// another family was knocked. With no Result, err says why nothing was.
func (k *Knocker) KnockFamilies(ctx context.Context, req Request) (rs []*Result, err error) {
	e := req.Enrollment
	if e == nil {
		return nil, errors.New("knock: no enrollment")
	}
	host := req.Host
	if host == "" {
		host = e.Host
	}
	if host == "" {
		return nil, errors.New("the enrollment has no host: name the host to knock at")
	}
	if _, err := Service(e, req.Service); err != nil {
		return nil, err
	}
	addrs, err := resolve(ctx, k.resolver(), host)
	if err != nil {
		return nil, err
	}
	type failure struct {
		fam Family
		err error
	}
	var errs, unrouted []failure
	tried := 0
	for _, fam := range []Family{IPv6, IPv4} {
		if req.Family != AnyFamily && req.Family != fam {
			continue
		}
		if req.Source.IsValid() && !fam.match(req.Source) {
			continue
		}
		var famAddrs []netip.Addr
		for _, a := range addrs {
			if fam.match(a) {
				famAddrs = append(famAddrs, a)
			}
		}
		if len(famAddrs) == 0 {
			continue
		}
		tried++
		if !k.routed(famAddrs) {
			unrouted = append(unrouted, failure{fam, fmt.Errorf("host %s (%v): no route from this machine", host, famAddrs[0])})
			continue
		}
		r2 := req
		r2.Host = host
		r2.Family = fam
		r2.addrs = famAddrs
		r, err := k.Knock(ctx, r2)
		if r != nil {
			rs = append(rs, r)
		}
		if err != nil {
			errs = append(errs, failure{fam, err})
		}
	}
	// Name the family only when there were two.
	join := func(fs []failure) error {
		all := make([]error, len(fs))
		for i, f := range fs {
			all[i] = f.err
			if tried > 1 {
				all[i] = fmt.Errorf("%v: %w", f.fam, f.err)
			}
		}
		return errors.Join(all...)
	}
	switch {
	case tried == 0 && req.Source.IsValid():
		return nil, fmt.Errorf("host %s has no %s address to match the source address %v (it has %v)", host, familyName(req.Source), req.Source, addrs)
	case tried == 0:
		return nil, fmt.Errorf("host %s has no %v address (it has %v)", host, req.Family, addrs)
	case len(rs) == 0:
		return nil, join(append(errs, unrouted...))
	}
	return rs, join(errs)
}

// routed reports whether this machine has a route to one of addrs.
func (k *Knocker) routed(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if _, err := k.route()(a); err == nil {
			return true
		}
	}
	return false
}

// WaitAny waits, as WaitReknock does, on every address at once and returns
// the first connection, so that ssh-proxy connects over a family it
// knocked whichever opens first. reknock (every after; nil: never) runs
// from the first address's wait only, since one re-knock knocks every
// family; the others keep polling at their pace. The error after a
// timeout wraps ErrNotOpen and names every address.
func WaitAny(ctx context.Context, dsts []netip.AddrPort, timeout, after time.Duration, reknock func(context.Context) error) (net.Conn, netip.AddrPort, time.Duration, error) {
	return WaitAnyConnect(ctx, nil, dsts, timeout, after, reknock)
}

// WaitAnyConnect is WaitAny with the connections made by connect (nil: a
// net.Dialer).
func WaitAnyConnect(ctx context.Context, connect ConnectFunc, dsts []netip.AddrPort, timeout, after time.Duration, reknock func(context.Context) error) (net.Conn, netip.AddrPort, time.Duration, error) {
	if len(dsts) == 1 {
		c, took, err := waitReknock(ctx, connect, dsts[0], timeout, after, reknock)
		return c, dsts[0], took, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		dst  netip.AddrPort
		c    net.Conn
		took time.Duration
		err  error
	}
	results := make(chan result, len(dsts))
	for i, d := range dsts {
		again := reknock
		if i > 0 {
			again = nil
		}
		go func() {
			c, took, err := waitReknock(ctx, connect, d, timeout, after, again)
			results <- result{d, c, took, err}
		}()
	}
	var errs []error
	var took time.Duration
	for i := range dsts {
		r := <-results
		if r.err == nil {
			cancel()
			go func(n int) { // close the connections that come in late
				for range n {
					if r := <-results; r.c != nil {
						r.c.Close()
					}
				}
			}(len(dsts) - i - 1)
			return r.c, r.dst, r.took, nil
		}
		errs = append(errs, r.err)
		took = max(took, r.took)
	}
	return nil, netip.AddrPort{}, took, errors.Join(errs...)
}
