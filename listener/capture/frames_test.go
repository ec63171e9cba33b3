package capture

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

// pkt describes a test frame; frame builds it with gopacket.
type pkt struct {
	link     listener.LinkType // default listener.LinkEthernet
	src, dst string            // addresses; IPv6 when src contains ':'
	proto    inet.Proto
	syn, ack bool
	rst, fin bool
	dport    uint16
	tags     []layers.EthernetType // inline VLAN tags, outermost first (0x8100 or 0x88a8)
	mf       bool                  // IPv4 more fragments
	fragOff  uint16                // IPv4 fragment offset (8-byte units)
	ipOpts   bool                  // IPv4 header options (IHL 6)
	tcpOpts  bool                  // TCP MSS and window scale options
	hopByHop bool                  // IPv6 hop-by-hop header before the transport
	payload  []byte
	dstMAC   net.HardwareAddr // default 02:00:00:00:00:01
}

var fixtureTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// frame serializes p with lengths and checksums fixed up.
func (p pkt) frame(t testing.TB) listener.Frame {
	t.Helper()
	link := p.link
	if link == 0 {
		link = listener.LinkEthernet
	}
	src, dst := net.ParseIP(p.src), net.ParseIP(p.dst)
	if src == nil || dst == nil {
		t.Fatalf("bad test addresses %q, %q", p.src, p.dst)
	}
	v6 := strings.Contains(p.src, ":")
	var ls []gopacket.SerializableLayer

	if link == listener.LinkEthernet {
		etherType := layers.EthernetTypeIPv4
		if v6 {
			etherType = layers.EthernetTypeIPv6
		}
		first := etherType
		if len(p.tags) > 0 {
			first = p.tags[0]
		}
		dstMAC := p.dstMAC
		if dstMAC == nil {
			dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
		}
		ls = append(ls, &layers.Ethernet{
			SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
			DstMAC:       dstMAC,
			EthernetType: first,
		})
		for i := range p.tags {
			next := etherType
			if i+1 < len(p.tags) {
				next = p.tags[i+1]
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
		}
	}

	var netLayer gopacket.NetworkLayer
	ipProto := layers.IPProtocol(p.proto)
	if v6 {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.To16(), DstIP: dst.To16(), NextHeader: ipProto}
		ls = append(ls, ip6)
		if p.hopByHop {
			ip6.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = ipProto
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			ls = append(ls, hbh)
		}
		netLayer = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.To4(), DstIP: dst.To4(), Protocol: ipProto, FragOffset: p.fragOff}
		if p.mf {
			ip4.Flags |= layers.IPv4MoreFragments
		}
		if p.ipOpts {
			ip4.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		ls = append(ls, ip4)
		netLayer = ip4
	}

	switch p.proto {
	case inet.TCP:
		tcp := &layers.TCP{SrcPort: 40123, DstPort: layers.TCPPort(p.dport), Seq: 1, SYN: p.syn, ACK: p.ack, RST: p.rst, FIN: p.fin, Window: 64240}
		if p.tcpOpts {
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
		udp := &layers.UDP{SrcPort: 40123, DstPort: layers.UDPPort(p.dport)}
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
	if p.payload != nil {
		ls = append(ls, gopacket.Payload(p.payload))
	}

	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize %+v: %v", p, err)
	}
	return listener.Frame{Data: buf.Bytes(), Time: fixtureTime, Link: link, Ifindex: 7}
}

// arpFrame is an ARP request, a frame that is neither IPv4 nor IPv6.
func arpFrame(t testing.TB) listener.Frame {
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

// testRanges are the knock ranges of the unit tests: TCP 40000-40999 (given
// as two overlapping ranges), UDP 50000-50099 and UDP 50200-50299.
var testRanges = []inet.Range{
	{Proto: inet.TCP, Lo: 40000, Hi: 40599},
	{Proto: inet.TCP, Lo: 40500, Hi: 40999},
	{Proto: inet.UDP, Lo: 50000, Hi: 50099},
	{Proto: inet.UDP, Lo: 50200, Hi: 50299},
}

// verdict is what the decoder makes of a frame.
type verdict uint8

const (
	isKnock verdict = iota
	isIgnored
	isMalformed
)

// frameCase is a frame and what the filter and the decoder make of it.
type frameCase struct {
	name  string
	frame func(t testing.TB) listener.Frame
	bpf   bool    // the filter accepts it
	want  verdict // what the decoder finds
}

func p(v pkt) func(testing.TB) listener.Frame { return v.frame }

func truncated(v pkt, n int) func(testing.TB) listener.Frame {
	return func(t testing.TB) listener.Frame {
		f := v.frame(t)
		f.Data = f.Data[:n]
		return f
	}
}

func mutated(v pkt, at int, b byte) func(testing.TB) listener.Frame {
	return func(t testing.TB) listener.Frame {
		f := v.frame(t)
		f.Data[at] = b
		return f
	}
}

const (
	tcp = inet.TCP
	udp = inet.UDP
)

var (
	v4syn = pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: tcp, syn: true, dport: 40000, tcpOpts: true}
	v4udp = pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: udp, dport: 50050, payload: []byte("knock")}
	v6syn = pkt{src: "2001:db8:1::2", dst: "2001:db8:1::1", proto: tcp, syn: true, dport: 40999, tcpOpts: true}
	v6udp = pkt{src: "2001:db8:1::2", dst: "2001:db8:1::1", proto: udp, dport: 50299}
)

func with(v pkt, f func(*pkt)) pkt { f(&v); return v }

var frameCases = []frameCase{
	{"v4 syn at lo", p(v4syn), true, isKnock},
	{"v4 syn at hi", p(with(v4syn, func(v *pkt) { v.dport = 40999 })), true, isKnock},
	{"v4 syn inside overlap", p(with(v4syn, func(v *pkt) { v.dport = 40550 })), true, isKnock},
	{"v4 syn below", p(with(v4syn, func(v *pkt) { v.dport = 39999 })), false, isIgnored},
	{"v4 syn above", p(with(v4syn, func(v *pkt) { v.dport = 41000 })), false, isIgnored},
	{"v4 syn to udp range", p(with(v4syn, func(v *pkt) { v.dport = 50050 })), false, isIgnored},
	{"v4 syn no options", p(with(v4syn, func(v *pkt) { v.tcpOpts = false })), true, isKnock},
	{"v4 syn fin", p(with(v4syn, func(v *pkt) { v.fin = true })), true, isKnock},
	{"v4 syn ack", p(with(v4syn, func(v *pkt) { v.ack = true })), false, isIgnored},
	{"v4 ack", p(with(v4syn, func(v *pkt) { v.syn, v.ack = false, true })), false, isIgnored},
	{"v4 rst", p(with(v4syn, func(v *pkt) { v.syn, v.rst = false, true })), false, isIgnored},
	{"v4 ip options", p(with(v4syn, func(v *pkt) { v.ipOpts = true })), true, isKnock},
	{"v4 udp", p(v4udp), true, isKnock},
	{"v4 udp second range", p(with(v4udp, func(v *pkt) { v.dport = 50200 })), true, isKnock},
	{"v4 udp between ranges", p(with(v4udp, func(v *pkt) { v.dport = 50100 })), false, isIgnored},
	{"v4 udp to tcp range", p(with(v4udp, func(v *pkt) { v.dport = 40000 })), false, isIgnored},
	{"v4 udp first fragment", p(with(v4udp, func(v *pkt) { v.mf = true })), true, isKnock},
	{"v4 udp non-first fragment", p(with(v4udp, func(v *pkt) { v.fragOff = 185 })), false, isIgnored},
	{"v4 tcp last fragment", p(with(v4syn, func(v *pkt) { v.fragOff = 1 })), false, isIgnored},
	{"v4 icmp", p(pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: 1}), false, isIgnored},
	{"v6 syn", p(v6syn), true, isKnock},
	{"v6 ack", p(with(v6syn, func(v *pkt) { v.syn, v.ack = false, true })), false, isIgnored},
	{"v6 syn out of range", p(with(v6syn, func(v *pkt) { v.dport = 22 })), false, isIgnored},
	{"v6 udp", p(v6udp), true, isKnock},
	{"v6 udp out of range", p(with(v6udp, func(v *pkt) { v.dport = 50300 })), false, isIgnored},
	{"v6 udp hop-by-hop", p(with(v6udp, func(v *pkt) { v.hopByHop = true })), false, isIgnored},
	{"v6 v4-mapped source", p(with(v6udp, func(v *pkt) { v.src = "::ffff:192.0.2.2" })), true, isIgnored},
	{"v6 multicast source", p(with(v6udp, func(v *pkt) { v.src = "ff02::1" })), true, isIgnored},
	{"vlan v4 syn", p(with(v4syn, func(v *pkt) { v.tags = []layers.EthernetType{0x8100} })), true, isKnock},
	{"vlan v6 udp", p(with(v6udp, func(v *pkt) { v.tags = []layers.EthernetType{0x8100} })), true, isKnock},
	{"qinq v4 udp", p(with(v4udp, func(v *pkt) { v.tags = []layers.EthernetType{0x88a8, 0x8100} })), true, isKnock},
	{"qinq v6 syn", p(with(v6syn, func(v *pkt) { v.tags = []layers.EthernetType{0x8100, 0x8100} })), true, isKnock},
	{"vlan v4 ack", p(with(v4syn, func(v *pkt) { v.ack, v.tags = true, []layers.EthernetType{0x8100} })), false, isIgnored},
	{"reversed qinq v4 syn", p(with(v4syn, func(v *pkt) { v.tags = []layers.EthernetType{0x8100, 0x88a8} })), true, isKnock},
	{"three tags", p(with(v4udp, func(v *pkt) { v.tags = []layers.EthernetType{0x88a8, 0x8100, 0x8100} })), false, isIgnored},
	{"arp", arpFrame, false, isIgnored},
	{"ip v4 syn", p(with(v4syn, func(v *pkt) { v.link = listener.LinkIP })), true, isKnock},
	{"ip v4 ack", p(with(v4syn, func(v *pkt) { v.link, v.ack = listener.LinkIP, true })), false, isIgnored},
	{"ip v6 udp", p(with(v6udp, func(v *pkt) { v.link = listener.LinkIP })), true, isKnock},
	{"ip v6 udp out of range", p(with(v6udp, func(v *pkt) { v.link, v.dport = listener.LinkIP, 1 })), false, isIgnored},
	{"ip v4 fragment", p(with(v4udp, func(v *pkt) { v.link, v.fragOff = listener.LinkIP, 3 })), false, isIgnored},
	{"empty ethernet", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkEthernet} }, false, isMalformed},
	{"empty ip", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkIP} }, false, isMalformed},
	{"ip version 0", func(testing.TB) listener.Frame { return listener.Frame{Link: listener.LinkIP, Data: make([]byte, 40)} }, false, isIgnored},
	{"unknown link", func(t testing.TB) listener.Frame { f := v4syn.frame(t); f.Link = 9; return f }, false, isMalformed},
	{"v4 truncated ip header", truncated(v4syn, 14+12), false, isMalformed},
	{"v4 truncated tcp header", truncated(v4syn, 14+20+14), true, isMalformed},
	{"v4 ihl 4", mutated(v4syn, 14, 0x44), false, isMalformed},
	{"v4 tcp data offset 2", mutated(v4syn, 14+20+12, 0x20), true, isMalformed},
	{"v6 truncated ip header", truncated(v6udp, 14+30), false, isMalformed},
	{"v6 truncated udp header", truncated(v6udp, 14+40+6), true, isMalformed},
}
