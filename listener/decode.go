package listener

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tknock/tknock/totpseq"
)

// Decoder turns frames into knocks. It decodes into preallocated layers
// with gopacket's DecodingLayerParser: decoding a frame allocates nothing.
// IPv4, TCP and UDP are decoded by the decoder's own layers, which read
// only what a knock needs (decode_layers.go).
//
// It re-checks everything the capture filter checks (defence in depth):
// IPv4 or IPv6 (inside at most two inline 802.1Q/802.1ad tags for Ethernet
// frames), not
// a non-first IPv4 fragment, TCP with SYN set and ACK clear or UDP, and a
// destination port inside a knock range of that protocol. IPv6 packets with
// extension headers, and IPv6 packets from an IPv4-mapped, unspecified or
// multicast source, are not knocks.
//
// A Decoder is not safe for concurrent use, except SetRanges and Stats,
// which may be called from any goroutine.
type Decoder struct {
	eth  layers.Ethernet
	vlan layers.Dot1Q
	ip4  knockIPv4
	ip6  ipv6
	tcp  knockTCP
	udp  knockUDP

	ethParser, ip4Parser, ip6Parser *gopacket.DecodingLayerParser
	decoded                         []gopacket.LayerType

	ranges atomic.Pointer[rangeTable]

	knocks, ignored, malformed atomic.Uint64 // one atomic add per frame; Frames is their sum
}

// DecoderStats are a Decoder's counters since it was made. Frames is the
// sum of the three others.
type DecoderStats struct {
	Frames    uint64 // frames given to Decode
	Knocks    uint64 // frames that were knocks
	Ignored   uint64 // well-formed frames that are not knocks
	Malformed uint64 // frames that could not be decoded (truncated, bad header fields)
}

// NewDecoder returns a decoder for the knock ranges. Ranges may overlap. An
// invalid range (lo > hi, a protocol other than TCP or UDP) matches
// nothing; Filter reports such ranges as errors.
func NewDecoder(ranges []PortRange) *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 16)}
	dls := []gopacket.DecodingLayer{&d.eth, &d.vlan, &d.ip4, &d.ip6, &d.tcp, &d.udp}
	d.ethParser = newParser(layers.LayerTypeEthernet, dls)
	d.ip4Parser = newParser(layers.LayerTypeIPv4, dls)
	d.ip6Parser = newParser(layers.LayerTypeIPv6, dls)
	d.SetRanges(ranges)
	return d
}

func newParser(first gopacket.LayerType, decoders []gopacket.DecodingLayer) *gopacket.DecodingLayerParser {
	p := gopacket.NewDecodingLayerParser(first)
	p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, d := range decoders {
		p.AddDecodingLayer(d)
	}
	// Stop quietly at a layer we do not decode (ARP, ICMP, IPv6 extension
	// headers, fragments, payloads): such frames are not knocks.
	p.IgnoreUnsupported = true
	return p
}

// SetRanges replaces the knock ranges (a reload). It is safe to call
// concurrently with Decode; frames decoded after it returns use the new
// ranges.
func (d *Decoder) SetRanges(ranges []PortRange) {
	t, _ := newRangeTable(ranges) // invalid entries are left out
	d.ranges.Store(t)
}

// Stats returns the counters. It is safe to call from any goroutine.
func (d *Decoder) Stats() DecoderStats {
	s := DecoderStats{
		Knocks:    d.knocks.Load(),
		Ignored:   d.ignored.Load(),
		Malformed: d.malformed.Load(),
	}
	s.Frames = s.Knocks + s.Ignored + s.Malformed
	return s
}

// ipv6 is layers.IPv6 that refuses to decode a hop-by-hop options header
// (gopacket allocates for each option): like every IPv6 extension header,
// it means the packet is not a knock.
type ipv6 struct{ layers.IPv6 }

// errHopByHop is returned (as is, never wrapped) for IPv6 packets with a
// hop-by-hop options header.
var errHopByHop = errors.New("ipv6 hop-by-hop options header")

func (l *ipv6) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) > 6 && layers.IPProtocol(data[6]) == layers.IPProtocolIPv6HopByHop {
		return errHopByHop
	}
	return l.IPv6.DecodeFromBytes(data, df)
}

// verdict is what decoding a frame found.
type verdict uint8

const (
	isKnock verdict = iota
	isIgnored
	isMalformed
)

// Decode returns the knock in f, and true; or false when f is not a knock
// (counted as ignored or malformed). It never panics and allocates nothing.
func (d *Decoder) Decode(f Frame) (k Knock, ok bool) {
	switch d.decode(f, &k) {
	case isKnock:
		d.knocks.Add(1)
		return k, true
	case isIgnored:
		d.ignored.Add(1)
	default:
		d.malformed.Add(1)
	}
	return Knock{}, false
}

func (d *Decoder) decode(f Frame, k *Knock) verdict {
	var p *gopacket.DecodingLayerParser
	switch f.Link {
	case LinkEthernet:
		p = d.ethParser
	case LinkIP:
		if len(f.Data) == 0 {
			return isMalformed
		}
		switch f.Data[0] >> 4 {
		case 4:
			p = d.ip4Parser
		case 6:
			p = d.ip6Parser
		default:
			return isIgnored
		}
	default:
		return isMalformed
	}
	if err := p.DecodeLayers(f.Data, &d.decoded); err == errHopByHop {
		return isIgnored
	} else if err != nil {
		return isMalformed
	}

	// The network layer, and whether the transport header was decoded after it.
	var (
		src       netip.Addr
		network   gopacket.LayerType
		transport gopacket.LayerType
		tags      int
	)
	for _, t := range d.decoded {
		switch t {
		case layers.LayerTypeDot1Q:
			tags++
		case layers.LayerTypeIPv4, layers.LayerTypeIPv6:
			network = t
		case layers.LayerTypeTCP, layers.LayerTypeUDP:
			transport = t
		}
	}
	if tags > 2 {
		return isIgnored // the filter follows two tags at most
	}
	switch network {
	case layers.LayerTypeIPv4:
		src = netip.AddrFrom4(d.ip4.src)
		if d.ip4.fragOffset != 0 {
			return isIgnored // a non-first fragment has no transport header
		}
		if transport == 0 && d.ip4.moreFragments {
			// A first fragment: the parser stops at it, but it starts with
			// the transport header.
			var err error
			switch d.ip4.protocol {
			case layers.IPProtocolTCP:
				err = d.tcp.DecodeFromBytes(d.ip4.payload, gopacket.NilDecodeFeedback)
				transport = layers.LayerTypeTCP
			case layers.IPProtocolUDP:
				err = d.udp.DecodeFromBytes(d.ip4.payload, gopacket.NilDecodeFeedback)
				transport = layers.LayerTypeUDP
			default:
				return isIgnored
			}
			if err != nil {
				return isMalformed
			}
		}
	case layers.LayerTypeIPv6:
		if len(d.ip6.SrcIP) != 16 {
			return isMalformed
		}
		src = netip.AddrFrom16([16]byte(d.ip6.SrcIP))
		if src.Is4In6() || src.IsUnspecified() || src.IsMulticast() {
			return isIgnored
		}
	default:
		return isIgnored
	}

	var proto totpseq.Proto
	var port uint16
	switch transport {
	case layers.LayerTypeTCP:
		if !d.tcp.syn || d.tcp.ack {
			return isIgnored
		}
		proto, port = totpseq.TCP, d.tcp.dstPort
	case layers.LayerTypeUDP:
		proto, port = totpseq.UDP, d.udp.dstPort
	default:
		return isIgnored
	}
	if !d.ranges.Load().contains(proto, port) {
		return isIgnored
	}
	*k = Knock{Src: src, Proto: proto, Port: port, Time: f.Time}
	return isKnock
}
