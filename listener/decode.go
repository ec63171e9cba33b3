package listener

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener/internal/ranges"
)

// Decoder turns frames into knocks. It decodes with gopacket
// DecodingLayers of its own (decode_layers.go), which read only what a
// knock needs, into fields preallocated in the Decoder: decoding a frame
// allocates nothing. It drives them itself, the way gopacket's
// LayersDecoder does (decode a layer, ask it for the next layer type and
// its payload, stop at a type it has no layer for or at an empty
// payload), but with a switch on the layer type instead of a
// DecodingLayerContainer's interface calls: the layers are concrete, so
// the calls are direct and inlined.
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
	eth  knockEthernet
	vlan knockDot1Q
	ip4  knockIPv4
	ip6  knockIPv6
	tcp  knockTCP
	udp  knockUDP

	ranges atomic.Pointer[ranges.Table]

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
// nothing; capture.Filter reports such ranges as errors.
func NewDecoder(rs []inet.Range) *Decoder {
	d := &Decoder{}
	d.SetRanges(rs)
	return d
}

// SetRanges replaces the knock ranges (a reload). It is safe to call
// concurrently with Decode; frames decoded after it returns use the new
// ranges.
func (d *Decoder) SetRanges(rs []inet.Range) {
	t, _ := ranges.New(rs) // invalid entries are left out
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
	switch d.decode(&f, &k) {
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

// verdicts counts decoded frames by verdict, for a caller that decodes
// many frames and publishes the counts once (add).
type verdicts [3]uint64

// add publishes counts to d's counters.
func (d *Decoder) add(v *verdicts) {
	if v[isKnock] != 0 {
		d.knocks.Add(v[isKnock])
	}
	if v[isIgnored] != 0 {
		d.ignored.Add(v[isIgnored])
	}
	if v[isMalformed] != 0 {
		d.malformed.Add(v[isMalformed])
	}
	*v = verdicts{}
}

// decoded is what decodeLayers found: the network layer, whether a
// transport layer was decoded after it, and the 802.1Q tags crossed.
type decoded struct {
	network, transport gopacket.LayerType
	tags               int
}

// decodeLayers decodes data, a layer of type typ and those it contains,
// like gopacket.LayersDecoder over the decoder's layers with unsupported
// layer types ignored (DecodingLayerParser.IgnoreUnsupported): it stops
// quietly at a layer type it has no layer for (ARP, ICMP, IPv6 extension
// headers, fragments, payloads) or at an empty payload, and returns the
// first error of a layer.
func (d *Decoder) decodeLayers(data []byte, typ gopacket.LayerType, out *decoded) error {
	df := gopacket.NilDecodeFeedback
	for {
		var err error
		var next gopacket.LayerType
		switch typ {
		case layerEthernet:
			err = d.eth.DecodeFromBytes(data, df)
			next, data = d.eth.NextLayerType(), d.eth.LayerPayload()
		case layerDot1Q:
			err = d.vlan.DecodeFromBytes(data, df)
			next, data = d.vlan.NextLayerType(), d.vlan.LayerPayload()
			out.tags++
		case layerIPv4:
			err = d.ip4.DecodeFromBytes(data, df)
			next, data = d.ip4.NextLayerType(), d.ip4.LayerPayload()
			out.network = typ
		case layerIPv6:
			err = d.ip6.DecodeFromBytes(data, df)
			next, data = d.ip6.NextLayerType(), d.ip6.LayerPayload()
			out.network = typ
		case layerTCP:
			err = d.tcp.DecodeFromBytes(data, df)
			next, data = d.tcp.NextLayerType(), d.tcp.LayerPayload()
			out.transport = typ
		case layerUDP:
			err = d.udp.DecodeFromBytes(data, df)
			next, data = d.udp.NextLayerType(), d.udp.LayerPayload()
			out.transport = typ
		default:
			return nil
		}
		if err != nil {
			// The layer was not decoded: as in gopacket, it is not
			// recorded. (The caller looks at nothing after an error.)
			return err
		}
		if len(data) == 0 {
			return nil
		}
		typ = next
	}
}

func (d *Decoder) decode(f *Frame, k *Knock) verdict {
	if vd, ok := d.decodeFast(f, k); ok {
		return vd
	}
	var first gopacket.LayerType
	switch f.Link {
	case LinkEthernet:
		first = layerEthernet
	case LinkIP:
		if len(f.Data) == 0 {
			return isMalformed
		}
		switch f.Data[0] >> 4 {
		case 4:
			first = layerIPv4
		case 6:
			first = layerIPv6
		default:
			return isIgnored
		}
	default:
		return isMalformed
	}
	var l decoded
	if err := d.decodeLayers(f.Data, first, &l); err == errHopByHop {
		return isIgnored
	} else if err != nil {
		return isMalformed
	}
	if l.tags > 2 {
		return isIgnored // the filter follows two tags at most
	}

	var src netip.Addr
	switch l.network {
	case layerIPv4:
		src = netip.AddrFrom4(d.ip4.src)
		if d.ip4.fragOffset != 0 {
			return isIgnored // a non-first fragment has no transport header
		}
		if l.transport == 0 && d.ip4.moreFragments {
			// A first fragment: decoding stops at it, but it starts with
			// the transport header.
			var err error
			switch d.ip4.protocol {
			case ipProtoTCP:
				err = d.tcp.DecodeFromBytes(d.ip4.payload, gopacket.NilDecodeFeedback)
				l.transport = layerTCP
			case ipProtoUDP:
				err = d.udp.DecodeFromBytes(d.ip4.payload, gopacket.NilDecodeFeedback)
				l.transport = layerUDP
			default:
				return isIgnored
			}
			if err != nil {
				return isMalformed
			}
		}
	case layerIPv6:
		src = netip.AddrFrom16(d.ip6.src)
		if src.Is4In6() {
			return isIgnored
		}
	default:
		return isIgnored
	}
	if !usableSource(src) {
		return isIgnored
	}

	var proto inet.Proto
	var port uint16
	switch l.transport {
	case layerTCP:
		if !d.tcp.syn || d.tcp.ack {
			return isIgnored
		}
		proto, port = inet.TCP, d.tcp.dstPort
	case layerUDP:
		proto, port = inet.UDP, d.udp.dstPort
	default:
		return isIgnored
	}
	if !d.ranges.Load().Contains(proto, port) {
		return isIgnored
	}
	// Field by field: building a Knock and copying it whole makes wide
	// loads of narrow stores, which the CPU cannot forward (about 10 ns).
	k.Src, k.Proto, k.Port, k.Time = src, proto, port, f.Time
	return isKnock
}

// decodeFast decodes, in one straight pass, the frame nearly every knock
// and every flood is: an untagged Ethernet frame (or a raw IP packet) with
// an IPv4 header of 20 bytes that is neither fragmented nor cut short,
// carrying a whole TCP or UDP header. It reports false for any other
// frame, and for any that it would have to refuse: decode's general path
// decides those. Where it decides, it decides as the general path does
// (the layers' checks, in the same order; TestDecodeReference and
// FuzzDecodeReference compare both with gopacket's own layers).
func (d *Decoder) decodeFast(f *Frame, k *Knock) (verdict, bool) {
	ip := f.Data
	switch f.Link {
	case LinkEthernet:
		if len(ip) < 14 || ip[12] != 0x08 || ip[13] != 0x00 {
			return 0, false
		}
		ip = ip[14:]
	case LinkIP:
		if len(ip) == 0 || ip[0]>>4 != 4 {
			return 0, false
		}
	default:
		return 0, false
	}
	// knockIPv4 with no options, no fragment fields, and the whole packet
	// there; a payload (else the general path stops at the IPv4 layer).
	if len(ip) < 20 || ip[0]&0x0f != 5 || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return 0, false
	}
	length := int(binary.BigEndian.Uint16(ip[2:4]))
	if length <= 20 || length > len(ip) {
		return 0, false
	}
	l4 := ip[20:length]
	var (
		proto inet.Proto
		port  uint16
	)
	switch ip[9] {
	case ipProtoTCP:
		// knockTCP's checks.
		if len(l4) < 20 {
			return 0, false
		}
		hlen := int(l4[12]>>4) * 4
		if hlen < 20 || hlen > len(l4) || (hlen > 20 && checkOptions(l4[20:hlen], 2) != nil) {
			return 0, false
		}
		if l4[13]&0x12 != 0x02 { // SYN without ACK
			return isIgnored, true
		}
		proto, port = inet.TCP, binary.BigEndian.Uint16(l4[2:4])
	case ipProtoUDP:
		// knockUDP's checks.
		if len(l4) < 8 {
			return 0, false
		}
		if n := binary.BigEndian.Uint16(l4[4:6]); n != 0 && n < 8 {
			return 0, false
		}
		proto, port = inet.UDP, binary.BigEndian.Uint16(l4[2:4])
	default:
		return 0, false
	}
	if !d.ranges.Load().Contains(proto, port) {
		return isIgnored, true
	}
	if b := ip[12]; b == 0 || b == 127 || b >= 224 { // usableSource's IPv4 test
		return isIgnored, true
	}
	k.Src, k.Proto, k.Port, k.Time = netip.AddrFrom4([4]byte(ip[12:16])), proto, port, f.Time
	return isKnock, true
}

// usableSource reports whether a knock from src may count. Never from the
// unspecified or "this network" addresses (0.0.0.0/8, ::), loopback
// (127.0.0.0/8, ::1), multicast (224.0.0.0/4, ff00::/8), or 240.0.0.0/4
// (reserved, and the broadcast address): no client knocks from them, and a
// grant for one would admit whatever can forge it. decodeFast tests the
// first byte of an IPv4 source the same way.
func usableSource(src netip.Addr) bool {
	if src.Is4() {
		b := src.As4()[0]
		return b != 0 && b != 127 && b < 224
	}
	return !src.IsUnspecified() && !src.IsLoopback() && !src.IsMulticast()
}
