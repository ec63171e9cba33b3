package listener_test

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	rangetab "github.com/tknock/tknock/listener/internal/ranges"
	"github.com/tknock/tknock/listener/listenertest"
)

// refDecoder is the reference the Decoder is checked against: gopacket's
// own layers, driven by a DecodingLayerParser, with the decoder's rules
// written over their fields. It allocates (gopacket's IPv4 and TCP layers
// keep their options), which a test does not mind.
type refDecoder struct {
	eth  layers.Ethernet
	vlan layers.Dot1Q
	ip4  layers.IPv4
	ip6  refIPv6
	tcp  layers.TCP
	udp  layers.UDP

	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	ranges  *rangetab.Table
}

// refIPv6 is layers.IPv6 that refuses a hop-by-hop options header.
type refIPv6 struct{ layers.IPv6 }

func (l *refIPv6) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) > 6 && layers.IPProtocol(data[6]) == layers.IPProtocolIPv6HopByHop {
		return listener.ErrHopByHop
	}
	return l.IPv6.DecodeFromBytes(data, df)
}

// bogusSources are the sources no knock counts from (the decoder's
// usableSource, written out as prefixes).
var bogusSources = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("224.0.0.0/3"),
	netip.MustParsePrefix("::/128"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("ff00::/8"),
}

func newRefDecoder(ranges []inet.Range) *refDecoder {
	r := &refDecoder{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}}
	r.ranges, _ = rangetab.New(ranges)
	dls := []gopacket.DecodingLayer{&r.eth, &r.vlan, &r.ip4, &r.ip6, &r.tcp, &r.udp}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		p := gopacket.NewDecodingLayerParser(first, dls...)
		p.IgnoreUnsupported = true
		r.parsers[first] = p
	}
	return r
}

func (r *refDecoder) decode(f listener.Frame) (listener.Knock, listenertest.Verdict) {
	var p *gopacket.DecodingLayerParser
	switch f.Link {
	case listener.LinkEthernet:
		p = r.parsers[layers.LayerTypeEthernet]
	case listener.LinkIP:
		if len(f.Data) == 0 {
			return listener.Knock{}, listenertest.Malformed
		}
		switch f.Data[0] >> 4 {
		case 4:
			p = r.parsers[layers.LayerTypeIPv4]
		case 6:
			p = r.parsers[layers.LayerTypeIPv6]
		default:
			return listener.Knock{}, listenertest.Ignored
		}
	default:
		return listener.Knock{}, listenertest.Malformed
	}
	if err := p.DecodeLayers(f.Data, &r.decoded); err == listener.ErrHopByHop {
		return listener.Knock{}, listenertest.Ignored
	} else if err != nil {
		return listener.Knock{}, listenertest.Malformed
	}
	var network, transport gopacket.LayerType
	tags := 0
	for _, t := range r.decoded {
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
		return listener.Knock{}, listenertest.Ignored
	}
	var src netip.Addr
	switch network {
	case layers.LayerTypeIPv4:
		src = netip.AddrFrom4([4]byte(r.ip4.SrcIP.To4()))
		if r.ip4.FragOffset != 0 {
			return listener.Knock{}, listenertest.Ignored
		}
		if transport == 0 && r.ip4.Flags&layers.IPv4MoreFragments != 0 {
			var err error
			switch r.ip4.Protocol {
			case layers.IPProtocolTCP:
				err = r.tcp.DecodeFromBytes(r.ip4.Payload, gopacket.NilDecodeFeedback)
				transport = layers.LayerTypeTCP
			case layers.IPProtocolUDP:
				err = r.udp.DecodeFromBytes(r.ip4.Payload, gopacket.NilDecodeFeedback)
				transport = layers.LayerTypeUDP
			default:
				return listener.Knock{}, listenertest.Ignored
			}
			if err != nil {
				return listener.Knock{}, listenertest.Malformed
			}
		}
	case layers.LayerTypeIPv6:
		src = netip.AddrFrom16([16]byte(r.ip6.SrcIP))
		if src.Is4In6() || src.IsUnspecified() || src.IsMulticast() {
			return listener.Knock{}, listenertest.Ignored
		}
	default:
		return listener.Knock{}, listenertest.Ignored
	}
	for _, p := range bogusSources {
		if p.Contains(src) {
			return listener.Knock{}, listenertest.Ignored
		}
	}
	var proto inet.Proto
	var port uint16
	switch transport {
	case layers.LayerTypeTCP:
		if !r.tcp.SYN || r.tcp.ACK {
			return listener.Knock{}, listenertest.Ignored
		}
		proto, port = inet.TCP, uint16(r.tcp.DstPort)
	case layers.LayerTypeUDP:
		proto, port = inet.UDP, uint16(r.udp.DstPort)
	default:
		return listener.Knock{}, listenertest.Ignored
	}
	if !r.ranges.Contains(proto, port) {
		return listener.Knock{}, listenertest.Ignored
	}
	return listener.Knock{Src: src, Proto: proto, Port: port, Time: f.Time}, listenertest.Knock
}

// refCheck decodes f with d and with the reference and fails on any
// difference.
func refCheck(t *testing.T, d *listener.Decoder, r *refDecoder, name string, f listener.Frame) {
	t.Helper()
	var k listener.Knock
	got := listenertest.Verdict(d.DecodeVerdict(&f, &k))
	wantK, want := r.decode(f)
	if got != want {
		t.Fatalf("%s: listenertest.Verdict %d, gopacket's layers give %d (frame % x)", name, got, want, f.Data)
	}
	if got == listenertest.Knock && k != wantK {
		t.Fatalf("%s: knock %+v, gopacket's layers give %+v", name, k, wantK)
	}
}

// TestDecodeReference: the decoder's verdicts and knocks are those of
// gopacket's own layers for every frame case, and for every truncation of
// each.
func TestDecodeReference(t *testing.T) {
	d, r := listener.NewDecoder(listenertest.Ranges()), newRefDecoder(listenertest.Ranges())
	for _, c := range listenertest.Cases() {
		f := c.Frame(t)
		for n := len(f.Data); n >= 0; n-- {
			g := f
			g.Data = f.Data[:n]
			refCheck(t, d, r, c.Name, g)
		}
	}
}

// FuzzDecodeReference compares the decoder with gopacket's own layers on
// arbitrary frames. Crashers are kept under
// testdata/fuzz/FuzzDecodeReference.
func FuzzDecodeReference(f *testing.F) {
	for _, c := range listenertest.Cases() {
		fr := c.Frame(f)
		f.Add(fr.Data, uint8(fr.Link))
	}
	d, r := listener.NewDecoder(listenertest.Ranges()), newRefDecoder(listenertest.Ranges())
	f.Fuzz(func(t *testing.T, data []byte, link uint8) {
		refCheck(t, d, r, "fuzz", listener.Frame{Data: data, Link: listener.LinkType(link % 3), Time: listenertest.FixtureTime()})
	})
}
