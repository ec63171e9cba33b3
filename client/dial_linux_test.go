package client

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"golang.org/x/sys/unix"
)

// wirePacket is a packet seen on the wire by the capture.
type wirePacket struct {
	Proto inet.Proto
	Port  uint16
	SYN   bool // TCP SYN without ACK
}

func (p wirePacket) String() string { return fmt.Sprintf("%v/%d syn=%v", p.Proto, p.Port, p.SYN) }

// capture reads packets that arrive on lo (not the outgoing copies) until
// stop is closed, keeping TCP and UDP packets to ports in [lo, hi].
func capture(t *testing.T, fd int, lo, hi uint16, stop <-chan struct{}) <-chan []wirePacket {
	out := make(chan []wirePacket, 1)
	go func() {
		var got []wirePacket
		buf := make([]byte, 2048)
		for {
			select {
			case <-stop:
				out <- got
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // SO_RCVTIMEO expired
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			b := buf[:n]
			var proto byte
			var l4 []byte
			switch {
			case n >= 20 && b[0]>>4 == 4:
				proto, l4 = b[9], b[int(b[0]&0xf)*4:]
			case n >= 40 && b[0]>>4 == 6:
				proto, l4 = b[6], b[40:]
			default:
				continue
			}
			if len(l4) < 14 || (proto != 6 && proto != 17) {
				continue
			}
			port := binary.BigEndian.Uint16(l4[2:4])
			if port < lo || port > hi {
				continue
			}
			p := wirePacket{Proto: inet.Proto(proto), Port: port}
			if proto == 6 {
				p.SYN = l4[13]&0x12 == 0x02
			}
			got = append(got, p)
		}
	}()
	return out
}

// TestNetDialerOnTheWire knocks loopback inside a fresh namespace where an
// nftables rule drops the knocks silently (as tknockd's table does), and
// captures what reaches the interface: each TCP knock is exactly one SYN,
// in order, not retransmitted a second later (the socket was abandoned);
// each UDP knock one datagram.
func TestNetDialerOnTheWire(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	ns := nstest.New(t)
	ns.MustRun(t, "nft", "add table inet t; add chain inet t in { type filter hook input priority 0; }; add rule inet t in meta l4proto { tcp, udp } th dport 40000-40999 drop")

	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 50_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: 1})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	stop := make(chan struct{})
	got := capture(t, fd, 40000, 40999, stop)

	var want []wirePacket
	knocks := []struct {
		proto inet.Proto
		dst   string
	}{
		{inet.TCP, "127.0.0.1:40010"}, {inet.TCP, "127.0.0.1:40003"}, {inet.TCP, "127.0.0.1:40007"},
		{inet.UDP, "127.0.0.1:40020"}, {inet.UDP, "127.0.0.1:40011"},
		{inet.TCP, "[::1]:40500"}, {inet.UDP, "[::1]:40501"}, {inet.TCP, "[::1]:40502"},
	}
	if err := ns.Do(func() error {
		for _, k := range knocks {
			dst := netip.MustParseAddrPort(k.dst)
			if err := (NetDialer{}).Knock(t.Context(), k.proto, dst); err != nil {
				return err
			}
			want = append(want, wirePacket{Proto: k.proto, Port: dst.Port(), SYN: k.proto == inet.TCP})
			time.Sleep(DefaultGap)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// An abandoned connect would retransmit its SYN after 1 s.
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("packets on the wire (-want +got):\n%s", diff)
	}
}

// TestNetDialerErrorHidesPort knocks where there is no route: the error
// says why and does not show the port.
func TestNetDialerErrorHidesPort(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	for _, proto := range []inet.Proto{inet.TCP, inet.UDP} {
		var err error
		ns.Do(func() error {
			err = (NetDialer{}).Knock(t.Context(), proto, netip.MustParseAddrPort("192.0.2.1:40123"))
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "40123") {
			t.Errorf("%v knock without a route = %v, want 'unreachable' without the port", proto, err)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
