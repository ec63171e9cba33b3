package listener

import (
	"encoding/binary"
	"errors"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

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
	typ     layers.EthernetType
	payload []byte
}

func (e *knockEthernet) CanDecode() gopacket.LayerClass    { return layers.LayerTypeEthernet }
func (e *knockEthernet) LayerPayload() []byte              { return e.payload }
func (e *knockEthernet) NextLayerType() gopacket.LayerType { return e.typ.LayerType() }

func (e *knockEthernet) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 14 {
		return errBadHeader
	}
	e.typ = layers.EthernetType(binary.BigEndian.Uint16(data[12:14]))
	e.payload = data[14:]
	if e.typ < 0x0600 {
		// A length: layers.Ethernet trims the payload to it, which does
		// not matter here, as nothing decodes LLC.
		e.typ = layers.EthernetTypeLLC
	}
	return nil
}

// knockDot1Q is an 802.1Q or 802.1ad tag: the EtherType it carries.
type knockDot1Q struct {
	typ     layers.EthernetType
	payload []byte
}

func (v *knockDot1Q) CanDecode() gopacket.LayerClass    { return layers.LayerTypeDot1Q }
func (v *knockDot1Q) LayerPayload() []byte              { return v.payload }
func (v *knockDot1Q) NextLayerType() gopacket.LayerType { return v.typ.LayerType() }

func (v *knockDot1Q) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		df.SetTruncated()
		return errBadHeader
	}
	v.typ = layers.EthernetType(binary.BigEndian.Uint16(data[2:4]))
	v.payload = data[4:]
	return nil
}

// knockIPv6 is an IPv6 header: source address, next header, and the
// payload (cut at the payload length). It refuses a hop-by-hop options
// header (errHopByHop): like every IPv6 extension header, it means the
// packet is not a knock. (layers.IPv6 would decode it, allocating for each
// option.)
type knockIPv6 struct {
	next    layers.IPProtocol
	src     [16]byte
	payload []byte
}

// errHopByHop is returned (as is, never wrapped) for IPv6 packets with a
// hop-by-hop options header.
var errHopByHop = errors.New("ipv6 hop-by-hop options header")

func (ip *knockIPv6) CanDecode() gopacket.LayerClass    { return layers.LayerTypeIPv6 }
func (ip *knockIPv6) LayerPayload() []byte              { return ip.payload }
func (ip *knockIPv6) NextLayerType() gopacket.LayerType { return ip.next.LayerType() }

func (ip *knockIPv6) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) > 6 && layers.IPProtocol(data[6]) == layers.IPProtocolIPv6HopByHop {
		return errHopByHop
	}
	if len(data) < 40 {
		df.SetTruncated()
		return errBadHeader
	}
	ip.next = layers.IPProtocol(data[6])
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
	protocol      layers.IPProtocol
	src           [4]byte
	payload       []byte
}

func (ip *knockIPv4) CanDecode() gopacket.LayerClass { return layers.LayerTypeIPv4 }
func (ip *knockIPv4) LayerPayload() []byte           { return ip.payload }

// NextLayerType is layers.IPv4's: a fragment stops the parser.
func (ip *knockIPv4) NextLayerType() gopacket.LayerType {
	if ip.moreFragments || ip.fragOffset != 0 {
		return gopacket.LayerTypeFragment
	}
	return ip.protocol.LayerType()
}

func (ip *knockIPv4) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 20 {
		df.SetTruncated()
		return errBadHeader
	}
	flagsFrag := binary.BigEndian.Uint16(data[6:8])
	ip.moreFragments = flagsFrag&(uint16(layers.IPv4MoreFragments)<<13) != 0
	ip.fragOffset = flagsFrag & 0x1fff
	ip.protocol = layers.IPProtocol(data[9])
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

func (t *knockTCP) CanDecode() gopacket.LayerClass    { return layers.LayerTypeTCP }
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

func (u *knockUDP) CanDecode() gopacket.LayerClass    { return layers.LayerTypeUDP }
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
