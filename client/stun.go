package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
)

// STUNTimeout is how long the tknock command waits for a STUN answer, for
// all servers together (they are asked in parallel).
const STUNTimeout = 2 * time.Second

// stunFirstRTO is the first retransmission timeout of a binding request;
// it doubles after each retransmission (RFC 8489 section 6.2.1, shortened:
// a knock should not wait for seconds).
const stunFirstRTO = 200 * time.Millisecond

// Mapper finds the address that traffic from local shows beyond the NATs
// on its way, asking servers; STUN is the real one. from names the server
// that answered.
type Mapper interface {
	Mapped(ctx context.Context, servers []string, local netip.Addr) (addr netip.Addr, from string, err error)
}

// STUN asks STUN servers (RFC 8489 binding requests over UDP) for the
// address that traffic from this machine shows on their side of any NAT.
// The zero value resolves names with net.DefaultResolver and waits
// STUNTimeout. It is safe for concurrent use if its Resolver is.
type STUN struct {
	Resolver Resolver      // nil: net.DefaultResolver
	Timeout  time.Duration // for all servers together; zero: STUNTimeout
}

// Mapped asks every server at once, each from the local address local
// (the request leaves from the same address, and so the same family and
// the same NAT mapping, as the knocks do), and returns the first mapped
// address that comes back and the server that gave it. A server of
// local's family is needed: a name is resolved to its addresses of that
// family. The error, when every server fails, names each server and why.
func (s *STUN) Mapped(ctx context.Context, servers []string, local netip.Addr) (netip.Addr, string, error) {
	if len(servers) == 0 {
		return netip.Addr{}, "", errors.New("stun: no server")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = STUNTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		server string
		addr   netip.Addr
		err    error
	}
	answers := make(chan answer, len(servers))
	for _, srv := range servers {
		go func() {
			a, err := s.ask(ctx, srv, local)
			answers <- answer{srv, a, err}
		}()
	}
	var errs []error
	for range servers {
		a := <-answers
		if a.err == nil {
			return a.addr, a.server, nil
		}
		errs = append(errs, fmt.Errorf("stun server %s: %w", a.server, a.err))
	}
	return netip.Addr{}, "", errors.Join(errs...)
}

// ask sends binding requests to server from local until an answer comes
// or ctx is done.
func (s *STUN) ask(ctx context.Context, server string, local netip.Addr) (netip.Addr, error) {
	dst, err := s.serverAddr(ctx, server, local)
	if err != nil {
		return netip.Addr{}, err
	}
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bind %v: %w", local, hidePort(err))
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()

	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.Addr{}, err
	}
	buf := make([]byte, 1500)
	rto := stunFirstRTO
	for {
		if _, err := c.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			return netip.Addr{}, fmt.Errorf("send to %v: %w", dst, hidePort(err))
		}
		c.SetReadDeadline(time.Now().Add(rto))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return netip.Addr{}, fmt.Errorf("no answer from %v: %w", dst, ctx.Err())
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // retransmit
				}
				return netip.Addr{}, fmt.Errorf("receive from %v: %w", dst, hidePort(err))
			}
			if from.Addr().Unmap() != dst.Addr().Unmap() || from.Port() != dst.Port() {
				continue // not the server: ignore
			}
			a, ok, err := parseBindingResponse(buf[:n], req.TransactionID)
			if !ok {
				continue // another transaction, or not STUN
			}
			if err != nil {
				return netip.Addr{}, fmt.Errorf("answer from %v: %w", dst, err)
			}
			return a, nil
		}
		rto *= 2
	}
}

// parseBindingResponse decodes b as the answer to the binding request with
// transaction id. ok is false for anything else (ignored, as RFC 8489
// says). A matching error response or one without a mapped address is an
// error.
func parseBindingResponse(b []byte, id [stun.TransactionIDSize]byte) (addr netip.Addr, ok bool, err error) {
	if !stun.IsMessage(b) {
		return addr, false, nil
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.TransactionID != id || m.Type.Method != stun.MethodBinding {
		return addr, false, nil
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var code stun.ErrorCodeAttribute
		if code.GetFrom(m) == nil {
			return addr, true, fmt.Errorf("error response %d %s", code.Code, code.Reason)
		}
		return addr, true, errors.New("error response")
	}
	if m.Type.Class != stun.ClassSuccessResponse {
		return addr, false, nil
	}
	var ip net.IP
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err == nil {
		ip = xa.IP
	} else {
		// RFC 3489 servers answer with MAPPED-ADDRESS only.
		var ma stun.MappedAddress
		if err := ma.GetFrom(m); err != nil {
			return addr, true, errors.New("success response without a mapped address")
		}
		ip = ma.IP
	}
	a, okIP := netip.AddrFromSlice(ip)
	if !okIP {
		return addr, true, fmt.Errorf("mapped address %v: not an IP address", ip)
	}
	return a.Unmap(), true, nil
}

// serverAddr resolves server (HOST:PORT) to an address of local's family.
func (s *STUN) serverAddr(ctx context.Context, server string, local netip.Addr) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want HOST:PORT: %w", err)
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		r := s.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		network := "ip4"
		if local.Is6() {
			network = "ip6"
		}
		if addrs, err = r.LookupNetIP(ctx, network, host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("cannot resolve %s: %w", host, err)
		}
	}
	for _, a := range addrs {
		if sameFamily(a, local) {
			return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no %s address (it has %v), and the knock leaves from %v", familyName(local), addrs, local)
}

// familyName returns "IPv4" or "IPv6".
func familyName(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}
