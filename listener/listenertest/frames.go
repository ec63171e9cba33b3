package listenertest

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

// Packet describes a test frame; Frame builds it with gopacket.
type Packet struct {
	Link       listener.LinkType // default listener.LinkEthernet
	Src, Dst   string            // addresses; IPv6 when Src contains ':'
	Proto      inet.Proto
	SYN, ACK   bool
	RST, FIN   bool
	DstPort    uint16
	Tags       []layers.EthernetType // inline VLAN tags, outermost first (0x8100 or 0x88a8)
	MF         bool                  // IPv4 more fragments
	FragOff    uint16                // IPv4 fragment offset (8-byte units)
	IPOptions  bool                  // IPv4 header options (IHL 6)
	TCPOptions bool                  // TCP MSS and window scale options
	HopByHop   bool                  // IPv6 hop-by-hop header before the transport
	Payload    []byte
	DstMAC     net.HardwareAddr // default 02:00:00:00:00:01
}

var fixtureTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// FixtureTime is the capture time of the frames Packet.Frame builds.
func FixtureTime() time.Time { return fixtureTime }

// Frame serializes p with lengths and checksums fixed up, at FixtureTime
// on interface 7.
func (p Packet) Frame(t testing.TB) listener.Frame {
	t.Helper()
	link := p.Link
	if link == 0 {
		link = listener.LinkEthernet
	}
	src, dst := net.ParseIP(p.Src), net.ParseIP(p.Dst)
	if src == nil || dst == nil {
		t.Fatalf("bad test addresses %q, %q", p.Src, p.Dst)
	}
	v6 := strings.Contains(p.Src, ":")
	var ls []gopacket.SerializableLayer

	if link == listener.LinkEthernet {
		etherType := layers.EthernetTypeIPv4
		if v6 {
			etherType = layers.EthernetTypeIPv6
		}
		first := etherType
		if len(p.Tags) > 0 {
			first = p.Tags[0]
		}
		dstMAC := p.DstMAC
		if dstMAC == nil {
			dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
		}
		ls = append(ls, &layers.Ethernet{
			SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
			DstMAC:       dstMAC,
			EthernetType: first,
		})
		for i := range p.Tags {
			next := etherType
			if i+1 < len(p.Tags) {
				next = p.Tags[i+1]
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
		}
	}

	var netLayer gopacket.NetworkLayer
	ipProto := layers.IPProtocol(p.Proto)
	if v6 {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.To16(), DstIP: dst.To16(), NextHeader: ipProto}
		ls = append(ls, ip6)
		if p.HopByHop {
			ip6.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = ipProto
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			ls = append(ls, hbh)
		}
		netLayer = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.To4(), DstIP: dst.To4(), Protocol: ipProto, FragOffset: p.FragOff}
		if p.MF {
			ip4.Flags |= layers.IPv4MoreFragments
		}
		if p.IPOptions {
			ip4.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls = append(ls, ip4)
		netLayer = ip4
	}

	switch p.Proto {
	case inet.TCP:
		tcp := &layers.TCP{SrcPort: 40123, DstPort: layers.TCPPort(p.DstPort), Seq: 1, SYN: p.SYN, ACK: p.ACK, RST: p.RST, FIN: p.FIN, Window: 64240}
		if p.TCPOptions {
			tcp.Options = []layers.TCPOption{
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
				{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
			}
		}
		if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	case inet.UDP:
		udp := &layers.UDP{SrcPort: 40123, DstPort: layers.UDPPort(p.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
	case 1: // ICMP echo
		if v6 {
			t.Fatal("no ICMPv6 in fixtures")
		}
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
	}
	if p.Payload != nil {
		ls = append(ls, gopacket.Payload(p.Payload))
	}

	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize %+v: %v", p, err)
	}
	return listener.Frame{Data: buf.Bytes(), Time: fixtureTime, Link: link, Ifindex: 7}
}

// ARPFrame returns an ARP request, a frame that is neither IPv4 nor IPv6.
func ARPFrame(t testing.TB) listener.Frame {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: []byte{2, 0, 0, 0, 0, 2}, SourceProtAddress: []byte{192, 0, 2, 2},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{192, 0, 2, 1}})
	if err != nil {
		t.Fatal(err)
	}
	return listener.Frame{Data: buf.Bytes(), Link: listener.LinkEthernet}
}

// Ranges returns the knock ranges of the frame cases: TCP 40000-40999
// (given as two overlapping ranges), UDP 50000-50099 and UDP 50200-50299.
func Ranges() []inet.Range { return slices.Clone(testRanges) }

var testRanges = []inet.Range{
	{Proto: inet.TCP, Lo: 40000, Hi: 40599},
	{Proto: inet.TCP, Lo: 40500, Hi: 40999},
	{Proto: inet.UDP, Lo: 50000, Hi: 50099},
	{Proto: inet.UDP, Lo: 50200, Hi: 50299},
}

// Verdict is what the decoder makes of a frame.
type Verdict uint8

// Verdicts.
const (
	Knock     Verdict = iota // a knock
	Ignored                  // well formed, not a knock
	Malformed                // cut short or inconsistent
)

// Case is a frame and what the capture's filter and the decoder make of
// it, with the knock ranges of Ranges.
type Case struct {
	Name  string
	Frame func(t testing.TB) listener.Frame
	BPF   bool    // the filter accepts it
	Want  Verdict // what the decoder finds
}

func p(v Packet) func(testing.TB) listener.Frame { return v.Frame }

func truncated(v Packet, n int) func(testing.TB) listener.Frame {
	return func(t testing.TB) listener.Frame {
		f := v.Frame(t)
		f.Data = f.Data[:n]
		return f
	}
}

func mutated(v Packet, at int, b byte) func(testing.TB) listener.Frame {
	return func(t testing.TB) listener.Frame {
		f := v.Frame(t)
		f.Data[at] = b
		return f
	}
}

const (
	tcp = inet.TCP
	udp = inet.UDP
)

// Four knocks into Ranges: TCP SYNs and UDP datagrams, IPv4 and IPv6.
var (
	v4syn = Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: tcp, SYN: true, DstPort: 40000, TCPOptions: true}
	v4udp = Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: udp, DstPort: 50050, Payload: []byte("knock")}
	v6syn = Packet{Src: "2001:db8:1::2", Dst: "2001:db8:1::1", Proto: tcp, SYN: true, DstPort: 40999, TCPOptions: true}
	v6udp = Packet{Src: "2001:db8:1::2", Dst: "2001:db8:1::1", Proto: udp, DstPort: 50299}
)

// V4SYN returns a TCP SYN from 192.0.2.2 to 192.0.2.1 port 40000.
func V4SYN() Packet { return v4syn }

// V4UDP returns a UDP datagram from 192.0.2.2 to 192.0.2.1 port 50050.
func V4UDP() Packet { return v4udp }

// V6SYN returns a TCP SYN from 2001:db8:1::2 to 2001:db8:1::1 port 40999.
func V6SYN() Packet { return v6syn }

// V6UDP returns a UDP datagram from 2001:db8:1::2 to 2001:db8:1::1 port
// 50299.
func V6UDP() Packet { return v6udp }

// With returns v changed by f.
func With(v Packet, f func(*Packet)) Packet { f(&v); return v }

func with(v Packet, f func(*Packet)) Packet { return With(v, f) }

// Cases returns the frame cases: knocks at the edges of Ranges, VLAN tags,
// fragments, options, truncated and mangled headers, both link types.
func Cases() []Case { return slices.Clone(cases) }

var cases = []Case{
	{"v4 syn at lo", p(v4syn), true, Knock},
	{"v4 syn at hi", p(with(v4syn, func(v *Packet) { v.DstPort = 40999 })), true, Knock},
	{"v4 syn inside overlap", p(with(v4syn, func(v *Packet) { v.DstPort = 40550 })), true, Knock},
	{"v4 syn below", p(with(v4syn, func(v *Packet) { v.DstPort = 39999 })), false, Ignored},
	{"v4 syn above", p(with(v4syn, func(v *Packet) { v.DstPort = 41000 })), false, Ignored},
	{"v4 syn to udp range", p(with(v4syn, func(v *Packet) { v.DstPort = 50050 })), false, Ignored},
	{"v4 syn no options", p(with(v4syn, func(v *Packet) { v.TCPOptions = false })), true, Knock},
	{"v4 syn fin", p(with(v4syn, func(v *Packet) { v.FIN = true })), true, Knock},
	{"v4 syn ack", p(with(v4syn, func(v *Packet) { v.ACK = true })), false, Ignored},
	{"v4 ack", p(with(v4syn, func(v *Packet) { v.SYN, v.ACK = false, true })), false, Ignored},
	{"v4 rst", p(with(v4syn, func(v *Packet) { v.SYN, v.RST = false, true })), false, Ignored},
	{"v4 ip options", p(with(v4syn, func(v *Packet) { v.IPOptions = true })), true, Knock},
	{"v4 udp", p(v4udp), true, Knock},
	{"v4 udp second range", p(with(v4udp, func(v *Packet) { v.DstPort = 50200 })), true, Knock},
	{"v4 udp between ranges", p(with(v4udp, func(v *Packet) { v.DstPort = 50100 })), false, Ignored},
	{"v4 udp to tcp range", p(with(v4udp, func(v *Packet) { v.DstPort = 40000 })), false, Ignored},
	{"v4 udp first fragment", p(with(v4udp, func(v *Packet) { v.MF = true })), true, Knock},
	{"v4 udp non-first fragment", p(with(v4udp, func(v *Packet) { v.FragOff = 185 })), false, Ignored},
	{"v4 tcp last fragment", p(with(v4syn, func(v *Packet) { v.FragOff = 1 })), false, Ignored},
	{"v4 icmp", p(Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: 1}), false, Ignored},
	{"v6 syn", p(v6syn), true, Knock},
	{"v6 ack", p(with(v6syn, func(v *Packet) { v.SYN, v.ACK = false, true })), false, Ignored},
	{"v6 syn out of range", p(with(v6syn, func(v *Packet) { v.DstPort = 22 })), false, Ignored},
	{"v6 udp", p(v6udp), true, Knock},
	{"v6 udp out of range", p(with(v6udp, func(v *Packet) { v.DstPort = 50300 })), false, Ignored},
	{"v6 udp hop-by-hop", p(with(v6udp, func(v *Packet) { v.HopByHop = true })), false, Ignored},
	{"v6 v4-mapped source", p(with(v6udp, func(v *Packet) { v.Src = "::ffff:192.0.2.2" })), true, Ignored},
	{"v6 multicast source", p(with(v6udp, func(v *Packet) { v.Src = "ff02::1" })), true, Ignored},
	{"vlan v4 syn", p(with(v4syn, func(v *Packet) { v.Tags = []layers.EthernetType{0x8100} })), true, Knock},
	{"vlan v6 udp", p(with(v6udp, func(v *Packet) { v.Tags = []layers.EthernetType{0x8100} })), true, Knock},
	{"qinq v4 udp", p(with(v4udp, func(v *Packet) { v.Tags = []layers.EthernetType{0x88a8, 0x8100} })), true, Knock},
	{"qinq v6 syn", p(with(v6syn, func(v *Packet) { v.Tags = []layers.EthernetType{0x8100, 0x8100} })), true, Knock},
	{"vlan v4 ack", p(with(v4syn, func(v *Packet) { v.ACK, v.Tags = true, []layers.EthernetType{0x8100} })), false, Ignored},
	{"reversed qinq v4 syn", p(with(v4syn, func(v *Packet) { v.Tags = []layers.EthernetType{0x8100, 0x88a8} })), true, Knock},
	{"three tags", p(with(v4udp, func(v *Packet) { v.Tags = []layers.EthernetType{0x88a8, 0x8100, 0x8100} })), false, Ignored},
	{"arp", ARPFrame, false, Ignored},
	{"ip v4 syn", p(with(v4syn, func(v *Packet) { v.Link = listener.LinkIP })), true, Knock},
	{"ip v4 ack", p(with(v4syn, func(v *Packet) { v.Link, v.ACK = listener.LinkIP, true })), false, Ignored},
	{"ip v6 udp", p(with(v6udp, func(v *Packet) { v.Link = listener.LinkIP })), true, Knock},
	{"ip v6 udp out of range", p(with(v6udp, func(v *Packet) { v.Link, v.DstPort = listener.LinkIP, 1 })), false, Ignored},
	{"ip v4 fragment", p(with(v4udp, func(v *Packet) { v.Link, v.FragOff = listener.LinkIP, 3 })), false, Ignored},
	{"empty ethernet", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkEthernet} }, false, Malformed},
	{"empty ip", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkIP} }, false, Malformed},
	{"ip version 0", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkIP, Data: make([]byte, 40)} }, false, Ignored},
	{"unknown link", func(t testing.TB) listener.Frame { f := v4syn.Frame(t); f.Link = 9; return f }, false, Malformed},
	{"v4 truncated ip header", truncated(v4syn, 14+12), false, Malformed},
	{"v4 truncated tcp header", truncated(v4syn, 14+20+14), true, Malformed},
	{"v4 ihl 4", mutated(v4syn, 14, 0x44), false, Malformed},
	{"v4 tcp data offset 2", mutated(v4syn, 14+20+12, 0x20), true, Malformed},
	{"v6 truncated ip header", truncated(v6udp, 14+30), false, Malformed},
	{"v6 truncated udp header", truncated(v6udp, 14+40+6), true, Malformed},
}
