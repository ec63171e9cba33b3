package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/totpseq"
)

// knockGap is the pause between two raw knocks, the client's default.
const knockGap = 25 * time.Millisecond

// sendRaw sends knocks (TCP SYNs or UDP datagrams) to the server's ports,
// from inside ns, as whole Ethernet frames written to an AF_PACKET socket:
// the source address is whatever src says, the namespace's own or a
// spoofed one. It is how an attacker replays what it captured.
func (e *env) sendRaw(ns *nstest.NS, src netip.Addr, proto inet.Proto, ports []uint16) {
	e.t.Helper()
	e.sendRawEvery(ns, src, proto, ports, knockGap)
}

// sendRawEvery is sendRaw with gap between two knocks.
func (e *env) sendRawEvery(ns *nstest.NS, src netip.Addr, proto inet.Proto, ports []uint16, gap time.Duration) {
	t := e.t
	t.Helper()
	ifname, srvIf := e.clientIf, e.srvToClient
	if ns == e.stranger {
		ifname, srvIf = e.strangerIf, e.srvToStranger
	}
	dstMAC := e.mac(e.server, srvIf)
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: sends only
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], dstMAC)
		for i, port := range ports {
			if i > 0 && gap > 0 {
				time.Sleep(gap)
			}
			frame, err := knockFrame(ifi.HardwareAddr, dstMAC, src, e.serverAddr, proto, port)
			if err != nil {
				return err
			}
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return fmt.Errorf("send knock: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw knocks from the %s as %v: %v", e.nsName(ns), src, err)
	}
}

// mac returns the hardware address of an interface in ns.
func (e *env) mac(ns *nstest.NS, ifname string) net.HardwareAddr {
	e.t.Helper()
	var hw net.HardwareAddr
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		hw = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return hw
}

// knockFrame builds one Ethernet frame: a TCP SYN (random source port and
// sequence number) or a UDP datagram with a small payload.
func knockFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, proto inet.Proto, port uint16) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC}
	var ip gopacket.NetworkLayer
	ipProto := layers.IPProtocol(proto)
	var ipLayer gopacket.SerializableLayer
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(rand.Uint32()), Flags: layers.IPv4DontFragment,
			Protocol: ipProto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip, ipLayer = ip4, ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipProto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ip, ipLayer = ip6, ip6
	}
	srcPort := uint16(32768 + rand.IntN(28000))
	var l4 gopacket.SerializableLayer
	var payload gopacket.Payload
	switch proto {
	case inet.TCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(srcPort), DstPort: layers.TCPPort(port), Seq: rand.Uint32(), SYN: true, Window: 64240}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		l4 = tcp
	case inet.UDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(srcPort), DstPort: layers.UDPPort(port)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		l4, payload = udp, gopacket.Payload("knock")
	default:
		return nil, fmt.Errorf("knock protocol %v", proto)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ipLayer, l4, payload); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sniffed is one knock-like packet seen on the wire.
type sniffed struct {
	Src   netip.Addr
	Proto inet.Proto
	Port  uint16
	SYN   bool // TCP: SYN set and ACK clear
}

// sniffer records the TCP and UDP packets arriving on one interface, the
// way an eavesdropper on the path would: a plain AF_PACKET socket of its
// own, independent of the daemon's capture.
type sniffer struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex // guards pkts
	pkts []sniffed
}

// sniff starts recording the packets that arrive on ifname in ns. It
// stops at the test's cleanup, or when packets is called.
func (e *env) sniff(ns *nstest.NS, ifname string) *sniffer {
	t := e.t
	t.Helper()
	s := &sniffer{stop: make(chan struct{}), done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(s.fd)
			return err
		}
		if err := unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(s.fd)
			return fmt.Errorf("bind AF_PACKET to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sniff %s: %v", ifname, err)
	}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func (s *sniffer) read() {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		flags := 0
		select {
		case <-s.stop:
			flags = unix.MSG_DONTWAIT // drain what is queued, then stop
		default:
		}
		n, from, err := unix.Recvfrom(s.fd, buf, flags)
		if err != nil {
			if flags != 0 {
				return
			}
			continue // the receive timeout: look at stop again
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if p, ok := parseKnock(buf[:n]); ok {
			s.mu.Lock()
			s.pkts = append(s.pkts, p)
			s.mu.Unlock()
		}
	}
}

func (s *sniffer) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
		unix.Close(s.fd)
	}
}

// packets stops the sniffer and returns what it saw.
func (s *sniffer) packets() []sniffed {
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pkts
}

// parseKnock reads source, protocol and destination port of a TCP or UDP
// packet in an Ethernet frame.
func parseKnock(frame []byte) (sniffed, bool) {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	var p sniffed
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP)
	case *layers.IPv6:
		p.Src, _ = netip.AddrFromSlice(ip.SrcIP)
	default:
		return p, false
	}
	p.Src = p.Src.Unmap()
	switch l4 := pkt.TransportLayer().(type) {
	case *layers.TCP:
		p.Proto, p.Port, p.SYN = inet.TCP, uint16(l4.DstPort), l4.SYN && !l4.ACK
	case *layers.UDP:
		p.Proto, p.Port = inet.UDP, uint16(l4.DstPort)
	default:
		return p, false
	}
	return p, true
}

// knocksFrom returns the ports of the knocks (SYNs without ACK, or UDP
// datagrams) from src into the knock range, in the order they arrived.
func knocksFrom(pkts []sniffed, src netip.Addr, proto inet.Proto) []uint16 {
	var ports []uint16
	for _, p := range pkts {
		if p.Src != src || p.Proto != proto || p.Port < knockLo || p.Port > knockHi {
			continue
		}
		if proto == inet.TCP && !p.SYN {
			continue
		}
		ports = append(ports, p.Port)
	}
	return ports
}

// markerOffset is the window offset of a marker sequence: beyond any skew
// the tests configure, within the daemon's clock-skew detection (up to 5).
const markerOffset = 4

// marker makes the daemon log a line after it has handled every knock sent
// before: it sends u's sequence for a window markerOffset windows ahead,
// from ns with the source address src, and waits for the daemon's
// clock-skew rejection of it. A test that asserts "nothing opened" calls
// it first, so that the assertion does not race the daemon.
func (e *env) marker(d *daemon, ns *nstest.NS, src netip.Addr, u *user) {
	e.t.Helper()
	p := u.enr.Params
	w := totpseq.Window(time.Now(), p.Period) + markerOffset
	seq, err := totpseq.Sequence(&p, p.Services[0], w, src)
	if err != nil {
		e.t.Fatal(err)
	}
	m := d.mark()
	e.sendRaw(ns, src, p.Proto, seq)
	if _, err := d.waitFrom(m, 5*time.Second, "the marker's clock-skew rejection", func(l logLine) bool {
		return isReject("clock_skew")(l) && l.str("src") == src.String()
	}); err != nil {
		e.t.Fatal(err)
	}
}
