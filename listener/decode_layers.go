package listener

import (
	"encoding/binary"
	"errors"

	"github.com/google/gopacket"
)

// The layer types of the decoder's layers, registered with gopacket under
// numbers of their own, and the few protocol numbers it reads. They are
// not gopacket/layers': importing that package for its constants runs its
// init, which fills tables for every protocol it knows (6.5 MiB resident,
// a quarter of an idle daemon).
var (
	layerEthernet = gopacket.RegisterLayerType(0x7a01, gopacket.LayerTypeMetadata{Name: "knock Ethernet"})
	layerDot1Q    = gopacket.RegisterLayerType(0x7a02, gopacket.LayerTypeMetadata{Name: "knock 802.1Q"})
	layerIPv4     = gopacket.RegisterLayerType(0x7a03, gopacket.LayerTypeMetadata{Name: "knock IPv4"})
	layerIPv6     = gopacket.RegisterLayerType(0x7a04, gopacket.LayerTypeMetadata{Name: "knock IPv6"})
	layerTCP      = gopacket.RegisterLayerType(0x7a05, gopacket.LayerTypeMetadata{Name: "knock TCP"})
	layerUDP      = gopacket.RegisterLayerType(0x7a06, gopacket.LayerTypeMetadata{Name: "knock UDP"})
)

// EtherTypes and IP protocol numbers.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeDot1Q = 0x8100
	etherTypeQinQ  = 0x88a8
	etherTypeTEB   = 0x6558 // transparent Ethernet bridging: Ethernet again
	etherTypeLLC   = 0      // what gopacket's Ethernet makes of a length field

	ipProtoHopByHop = 0
	ipProtoIPv4     = 4 // IPv4 in IP
	ipProtoTCP      = 6
	ipProtoUDP      = 17
	ipProtoIPv6     = 41 // IPv6 in IP
	ipProtoIPIP     = 94 // IPv4 in IP, the older number
)

// etherLayer is the layer an EtherType leads to, exactly as gopacket's
// layers map it (v1.1.19, enums.go) for the layers the decoder has;
// gopacket.LayerTypeZero (decoding stops) for the others.
func etherLayer(t uint16) gopacket.LayerType {
	switch t {
	case etherTypeIPv4:
		return layerIPv4
	case etherTypeIPv6:
		return layerIPv6
	case etherTypeDot1Q, etherTypeQinQ:
		return layerDot1Q
	case etherTypeTEB:
		return layerEthernet
	}
	return gopacket.LayerTypeZero
}

// ipLayer is the layer an IP protocol number leads to, likewise.
func ipLayer(p uint8) gopacket.LayerType {
	switch p {
	case ipProtoTCP:
		return layerTCP
	case ipProtoUDP:
		return layerUDP
	case ipProtoIPv4, ipProtoIPIP:
		return layerIPv4
	case ipProtoIPv6:
		return layerIPv6
	}
	return gopacket.LayerTypeZero
}

// The decoder's own Ethernet, 802.1Q, IPv4, IPv6, TCP and UDP decoding
// layers. They read only the fields a knock needs, and refuse exactly the
// headers that gopacket's layers (v1.1.19) refuse, so the decoder's
// verdicts do not depend on which of them decodes a frame
// (decode_ref_test.go checks it against gopacket's own layers). The
// options are walked to check their lengths, never stored.

// errBadHeader is returned (as is) for a header that gopacket's layer
// would refuse: the frame is malformed.
var errBadHeader = errors.New("malformed header")

// knockEthernet is an Ethernet header: its EtherType, and the payload.
// Like layers.Ethernet, a length field (EtherType < 0x0600) makes it an
// LLC frame, which the decoder has no layer for.
type knockEthernet struct {
	typ     uint16
	payload []byte
}

func (e *knockEthernet) CanDecode() gopacket.LayerClass    { return layerEthernet }
func (e *knockEthernet) LayerPayload() []byte              { return e.payload }
func (e *knockEthernet) NextLayerType() gopacket.LayerType { return etherLayer(e.typ) }

func (e *knockEthernet) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 14 {
		return errBadHeader
	}
	e.typ = binary.BigEndian.Uint16(data[12:14])
	e.payload = data[14:]
	if e.typ < 0x0600 {
		// A length: layers.Ethernet trims the payload to it, which does
		// not matter here, as nothing decodes LLC.
		e.typ = etherTypeLLC
	}
	return nil
}

// knockDot1Q is an 802.1Q or 802.1ad tag: the EtherType it carries.
type knockDot1Q struct {
	typ     uint16
	payload []byte
}

func (v *knockDot1Q) CanDecode() gopacket.LayerClass    { return layerDot1Q }
func (v *knockDot1Q) LayerPayload() []byte              { return v.payload }
func (v *knockDot1Q) NextLayerType() gopacket.LayerType { return etherLayer(v.typ) }

func (v *knockDot1Q) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		df.SetTruncated()
		return errBadHeader
	}
	v.typ = binary.BigEndian.Uint16(data[2:4])
	v.payload = data[4:]
	return nil
}

// knockIPv6 is an IPv6 header: source address, next header, and the
// payload (cut at the payload length). It refuses a hop-by-hop options
// header (errHopByHop): like every IPv6 extension header, it means the
// packet is not a knock. (layers.IPv6 would decode it, allocating for each
// option.)
type knockIPv6 struct {
	next    uint8
	src     [16]byte
	payload []byte
}

// errHopByHop is returned (as is, never wrapped) for IPv6 packets with a
// hop-by-hop options header.
var errHopByHop = errors.New("ipv6 hop-by-hop options header")

func (ip *knockIPv6) CanDecode() gopacket.LayerClass    { return layerIPv6 }
func (ip *knockIPv6) LayerPayload() []byte              { return ip.payload }
func (ip *knockIPv6) NextLayerType() gopacket.LayerType { return ipLayer(ip.next) }

func (ip *knockIPv6) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) > 6 && data[6] == ipProtoHopByHop {
		return errHopByHop
	}
	if len(data) < 40 {
		df.SetTruncated()
		return errBadHeader
	}
	ip.next = data[6]
	ip.src = [16]byte(data[8:24])
	length := int(binary.BigEndian.Uint16(data[4:6]))
	if length == 0 {
		return errBadHeader // a jumbogram needs a hop-by-hop header
	}
	ip.payload = data[40:]
	if length < len(ip.payload) {
		ip.payload = ip.payload[:length]
	} else if length > len(ip.payload) {
		df.SetTruncated()
	}
	return nil
}

// knockIPv4 is an IPv4 header: fragment fields, protocol, source address
// and payload (cut at the total length).
type knockIPv4 struct {
	moreFragments bool
	fragOffset    uint16
	protocol      uint8
	src           [4]byte
	payload       []byte
}

func (ip *knockIPv4) CanDecode() gopacket.LayerClass { return layerIPv4 }
func (ip *knockIPv4) LayerPayload() []byte           { return ip.payload }

// NextLayerType is layers.IPv4's: a fragment stops the parser.
func (ip *knockIPv4) NextLayerType() gopacket.LayerType {
	if ip.moreFragments || ip.fragOffset != 0 {
		return gopacket.LayerTypeFragment
	}
	return ipLayer(ip.protocol)
}

func (ip *knockIPv4) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		df.SetTruncated()
		return errBadHeader
	}
	flagsFrag := binary.BigEndian.Uint16(data[6:8])
	ip.moreFragments = flagsFrag&(uint16(1)<<13) != 0
	ip.fragOffset = flagsFrag & 0x1fff
	ip.protocol = data[9]
	ip.src = [4]byte(data[12:16])

	length := int(binary.BigEndian.Uint16(data[2:4]))
	if length == 0 {
		length = int(uint16(len(data))) // TSO: gopacket takes the frame's length, as a uint16
	}
	hlen := int(data[0]&0x0f) * 4
	if length < 20 || hlen < 20 || hlen > length {
		return errBadHeader
	}
	if len(data) > length {
		data = data[:length]
	} else if len(data) < length {
		df.SetTruncated()
		if hlen > len(data) {
			return errBadHeader
		}
	}
	ip.payload = data[hlen:]
	return checkOptions(data[20:hlen], 3)
}

// checkOptions refuses the IPv4 or TCP options that layers.IPv4 or
// layers.TCP refuse: a truncated option, or one whose length byte is below
// minLen (3 for IPv4, 2 for TCP) or runs past the header.
func checkOptions(opts []byte, minLen byte) error {
	for len(opts) > 0 {
		switch opts[0] {
		case 0: // end of options
			return nil
		case 1: // no-op
			opts = opts[1:]
		default:
			if len(opts) < 2 || opts[1] < minLen || int(opts[1]) > len(opts) {
				return errBadHeader
			}
			opts = opts[opts[1]:]
		}
	}
	return nil
}

// knockTCP is a TCP header: destination port and the SYN and ACK flags.
// The parser stops after it.
type knockTCP struct {
	dstPort  uint16
	syn, ack bool
}

func (t *knockTCP) CanDecode() gopacket.LayerClass    { return layerTCP }
func (t *knockTCP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (t *knockTCP) LayerPayload() []byte              { return nil }

func (t *knockTCP) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		df.SetTruncated()
		return errBadHeader
	}
	t.dstPort = binary.BigEndian.Uint16(data[2:4])
	t.syn = data[13]&0x02 != 0
	t.ack = data[13]&0x10 != 0
	hlen := int(data[12]>>4) * 4
	if hlen < 20 {
		return errBadHeader
	}
	if hlen > len(data) {
		df.SetTruncated()
		return errBadHeader
	}
	return checkOptions(data[20:hlen], 2)
}

// knockUDP is a UDP header: destination port. The parser stops after it.
type knockUDP struct {
	dstPort uint16
}

func (u *knockUDP) CanDecode() gopacket.LayerClass    { return layerUDP }
func (u *knockUDP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (u *knockUDP) LayerPayload() []byte              { return nil }

func (u *knockUDP) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		df.SetTruncated()
		return errBadHeader
	}
	u.dstPort = binary.BigEndian.Uint16(data[2:4])
	if length := binary.BigEndian.Uint16(data[4:6]); length != 0 && length < 8 {
		return errBadHeader
	}
	return nil
}
