package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/tknock/tknock/inet"
)

// Dialer sends one knock: a TCP SYN or a UDP datagram to dst. Knock returns
// once the packet is handed to the operating system; it never waits for an
// answer. Its errors must not name dst's port (it is a port of the current
// sequence).
type Dialer interface {
	Knock(ctx context.Context, proto inet.Proto, dst netip.AddrPort) error
}

// NetDialer is the real Dialer. It needs no privilege: a TCP knock is a
// non-blocking connect on a fresh socket that is closed at once, before any
// answer, so the SYN leaves once and no handshake follows; a UDP knock is
// one datagram of UDPPayload. It is safe for concurrent use.
type NetDialer struct{}

// UDPPayload is the content of a UDP knock. The daemon ignores payloads;
// a few zero bytes get through middleboxes that drop empty datagrams.
const UDPPayload = "\x00\x00\x00\x00\x00\x00\x00\x00"

// Knock implements Dialer.
func (NetDialer) Knock(ctx context.Context, proto inet.Proto, dst netip.AddrPort) error {
	var err error
	switch proto {
	case inet.TCP:
		err = knockTCP(ctx, dst)
	case inet.UDP:
		err = knockUDP(ctx, dst)
	default:
		return fmt.Errorf("knock %v: unsupported protocol", proto)
	}
	if err != nil {
		return fmt.Errorf("knock %v to %v: %w", proto, dst.Addr(), hidePort(err))
	}
	return nil
}

func knockUDP(ctx context.Context, dst netip.AddrPort) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", dst.String())
	if err != nil {
		return err
	}
	_, err = c.Write([]byte(UDPPayload))
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// hidePort strips the *net.OpError wrapper, whose message carries the
// address and port, and keeps the cause ("connect: network is
// unreachable").
func hidePort(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// zoneIndex returns the interface index of an IPv6 zone ("eth0" or "2"),
// 0 for none.
func zoneIndex(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index), nil
	}
	var n uint32
	if _, err := fmt.Sscanf(zone, "%d", &n); err == nil && n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("zone %q: no such interface", zone)
}
