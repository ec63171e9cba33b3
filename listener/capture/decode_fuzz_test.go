package capture

import (
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	rangetab "github.com/tknock/tknock/listener/internal/ranges"
	"github.com/tknock/tknock/listener/listenertest"
)

// FuzzDecode feeds arbitrary frames to the decoder. It must never panic,
// keep its counters consistent, and only return knocks that are inside the
// ranges and that the kernel filter accepts too: the filter may pass more
// than the decoder (it checks less), never less, or knocks would be lost.
// Crashers are kept under testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, c := range listenertest.Cases() {
		fr := c.Frame(f)
		f.Add(fr.Data, uint8(fr.Link))
	}
	d := listener.NewDecoder(listenertest.Ranges())
	tbl, _ := rangetab.New(listenertest.Ranges())
	vms := map[listener.LinkType]*filterVM{
		listener.LinkEthernet: vm(f, listenertest.Ranges(), listener.LinkEthernet),
		listener.LinkIP:       vm(f, listenertest.Ranges(), listener.LinkIP),
	}
	f.Fuzz(func(t *testing.T, data []byte, link uint8) {
		before := d.Stats()
		k, ok := d.Decode(listener.Frame{Data: data, Link: listener.LinkType(link), Time: listenertest.FixtureTime()})
		after := d.Stats()
		if after.Frames != before.Frames+1 || after.Frames != after.Knocks+after.Ignored+after.Malformed {
			t.Fatalf("counters %+v after %+v: want one more frame, and frames = knocks + ignored + malformed", after, before)
		}
		if ok != (after.Knocks == before.Knocks+1) {
			t.Fatalf("Decode ok = %v, but knocks went from %d to %d", ok, before.Knocks, after.Knocks)
		}
		if !ok {
			if k != (listener.Knock{}) {
				t.Fatalf("not a knock, but Decode returned %+v", k)
			}
			return
		}
		if k.Proto != inet.TCP && k.Proto != inet.UDP || !tbl.Contains(k.Proto, k.Port) {
			t.Fatalf("knock %v/%d outside the ranges", k.Proto, k.Port)
		}
		if !k.Src.IsValid() || k.Src.Is4In6() || k.Src.Zone() != "" || !k.Time.Equal(listenertest.FixtureTime()) {
			t.Fatalf("knock %+v: want a valid unmapped source without zone and the frame's time", k)
		}
		v := vms[listener.LinkType(link)]
		if v == nil {
			t.Fatalf("knock from link type %d, which the decoder should refuse", link)
		}
		if n, err := v.Run(data); err != nil || n == 0 {
			t.Fatalf("decoder found knock %+v, but the filter drops the frame (%d, %v)", k, n, err)
		}
	})
}

// FuzzFilterAgrees builds well-formed frames from fuzzed fields; on these
// the kernel filter and the decoder must agree exactly.
func FuzzFilterAgrees(f *testing.F) {
	f.Add(false, uint8(6), uint8(0x02), uint16(40000), uint8(0), uint16(0), false, false)
	f.Add(true, uint8(17), uint8(0), uint16(50050), uint8(2), uint16(0), false, true)
	f.Add(false, uint8(17), uint8(0), uint16(50299), uint8(1), uint16(3), true, false)
	f.Add(true, uint8(6), uint8(0x12), uint16(40999), uint8(3), uint16(0), false, false)
	d := listener.NewDecoder(listenertest.Ranges())
	vms := map[listener.LinkType]*filterVM{
		listener.LinkEthernet: vm(f, listenertest.Ranges(), listener.LinkEthernet),
		listener.LinkIP:       vm(f, listenertest.Ranges(), listener.LinkIP),
	}
	f.Fuzz(func(t *testing.T, v6 bool, proto, flags uint8, dport uint16, tags uint8, fragOff uint16, mf, ipLink bool) {
		p := listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1", DstPort: dport, MF: mf, FragOff: fragOff & 0x1fff}
		if v6 {
			p = listenertest.Packet{Src: "2001:db8::2", Dst: "2001:db8::1", DstPort: dport}
		}
		switch proto % 3 {
		case 0:
			p.Proto = inet.TCP
		case 1:
			p.Proto = inet.UDP
		default:
			if v6 {
				return
			}
			p.Proto = 1 // ICMP
		}
		p.FIN, p.SYN, p.RST, p.ACK = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&0x10 != 0
		if ipLink {
			p.Link = listener.LinkIP
		} else {
			for i := range tags % 5 {
				p.Tags = append(p.Tags, [2]layers.EthernetType{0x8100, 0x88a8}[(flags>>(5+i%3))&1])
			}
		}
		fr := p.Frame(t)
		n, err := vms[fr.Link].Run(fr.Data)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := d.Decode(fr)
		if ok != (n > 0) {
			t.Fatalf("%+v: decoder knock = %v, filter accepts = %v", p, ok, n > 0)
		}
	})
}
