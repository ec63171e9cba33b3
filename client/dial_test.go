package client

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

// TestNetDialerUDP sends UDP knocks to loopback listeners and checks that
// each arrives, in order, with the payload.
func TestNetDialerUDP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		var conns []*net.UDPConn
		for range 3 {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			if err != nil {
				t.Fatalf("listen %s: %v", addr, err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		for _, c := range conns {
			dst := c.LocalAddr().(*net.UDPAddr).AddrPort()
			if err := (NetDialer{}).Knock(t.Context(), inet.UDP, dst); err != nil {
				t.Fatalf("Knock udp %v: %v", dst, err)
			}
		}
		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("knock %d on %s: %v", i, addr, err)
			}
			if string(buf[:n]) != UDPPayload {
				t.Errorf("knock %d payload %x, want %x", i, buf[:n], UDPPayload)
			}
		}
	}
}

// TestNetDialerTCP knocks a closed loopback port, which answers with a
// reset: that is not an error. (TestNetDialerOnTheWire checks the packets.)
func TestNetDialerTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	if err := (NetDialer{}).Knock(t.Context(), inet.TCP, closed); err != nil {
		t.Errorf("TCP knock on a closed port: %v", err)
	}
	if err := (NetDialer{}).Knock(t.Context(), inet.Proto(1), closed); err == nil || !strings.Contains(err.Error(), "unsupported protocol") {
		t.Errorf("knock with protocol 1 = %v, want unsupported protocol", err)
	}
}
