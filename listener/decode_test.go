package listener_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
)

func TestDecodeFrames(t *testing.T) {
	d := listener.NewDecoder(listenertest.Ranges())
	var want listener.DecoderStats
	for _, c := range listenertest.Cases() {
		f := c.Frame(t)
		k, ok := d.Decode(f)
		want.Frames++
		switch c.Want {
		case listenertest.Knock:
			want.Knocks++
		case listenertest.Ignored:
			want.Ignored++
		case listenertest.Malformed:
			want.Malformed++
		}
		if got := d.Stats(); got != want {
			t.Errorf("%s: stats = %+v, want %+v", c.Name, got, want)
			want = got
		}
		if ok != (c.Want == listenertest.Knock) {
			t.Errorf("%s: Decode ok = %v, want %v", c.Name, ok, c.Want == listenertest.Knock)
			continue
		}
		if !ok {
			if k != (listener.Knock{}) {
				t.Errorf("%s: not a knock, but Decode returned %+v", c.Name, k)
			}
			continue
		}
		if !k.Time.Equal(listenertest.FixtureTime()) {
			t.Errorf("%s: Time = %v, want %v", c.Name, k.Time, listenertest.FixtureTime())
		}
		if !k.Src.IsValid() || k.Src.Zone() != "" || k.Src.Is4In6() {
			t.Errorf("%s: Src = %v, want a valid unmapped address without zone", c.Name, k.Src)
		}
	}
}

// TestDecodeKnockFields checks every field of decoded knocks.
func TestDecodeKnockFields(t *testing.T) {
	d := listener.NewDecoder(listenertest.Ranges())
	for _, c := range []struct {
		p    listenertest.Packet
		want listener.Knock
	}{
		{listenertest.V4SYN(), listener.Knock{Src: netip.MustParseAddr("192.0.2.2"), Proto: inet.TCP, Port: 40000, Time: listenertest.FixtureTime()}},
		{listenertest.With(listenertest.V4UDP(), func(v *listenertest.Packet) { v.Link = listener.LinkIP }), listener.Knock{Src: netip.MustParseAddr("192.0.2.2"), Proto: inet.UDP, Port: 50050, Time: listenertest.FixtureTime()}},
		{listenertest.V6SYN(), listener.Knock{Src: netip.MustParseAddr("2001:db8:1::2"), Proto: inet.TCP, Port: 40999, Time: listenertest.FixtureTime()}},
		{listenertest.With(listenertest.V6UDP(), func(v *listenertest.Packet) { v.Src = "fe80::2" }), listener.Knock{Src: netip.MustParseAddr("fe80::2"), Proto: inet.UDP, Port: 50299, Time: listenertest.FixtureTime()}},
	} {
		k, ok := d.Decode(c.p.Frame(t))
		if !ok {
			t.Errorf("%+v: not a knock", c.p)
			continue
		}
		if diff := cmp.Diff(c.want, k, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%+v: knock (-want +got):\n%s", c.p, diff)
		}
		if c.want.Src.Is4() && !k.Src.Is4() {
			t.Errorf("Src %v is not a 4-byte address", k.Src)
		}
	}
}

func TestDecodeSetRanges(t *testing.T) {
	d := listener.NewDecoder(nil)
	f := listenertest.V4SYN().Frame(t)
	if _, ok := d.Decode(f); ok {
		t.Fatal("knock decoded with no ranges")
	}
	d.SetRanges([]inet.Range{{Proto: inet.TCP, Lo: 40000, Hi: 40000}})
	if _, ok := d.Decode(f); !ok {
		t.Fatal("knock not decoded after SetRanges")
	}
	// Invalid entries match nothing; the valid ones still work.
	d.SetRanges([]inet.Range{{Proto: inet.TCP, Lo: 40001, Hi: 39999}, {Proto: 99, Lo: 1, Hi: 65535}, {Proto: inet.UDP, Lo: 50050, Hi: 50050}})
	if _, ok := d.Decode(f); ok {
		t.Error("invalid range matched")
	}
	if _, ok := d.Decode(listenertest.V4UDP().Frame(t)); !ok {
		t.Error("valid range next to invalid ones did not match")
	}
}

// TestDecodeStaleLayers checks that fields of a layer decoded for an
// earlier frame never leak into a later one.
func TestDecodeStaleLayers(t *testing.T) {
	d := listener.NewDecoder(listenertest.Ranges())
	if _, ok := d.Decode(listenertest.V4SYN().Frame(t)); !ok {
		t.Fatal("v4 syn not a knock")
	}
	// Truncated after the IPv4 header: the TCP layer still holds the SYN.
	if k, ok := d.Decode(truncate(listenertest.V4SYN().Frame(t), 14+20)); ok {
		t.Errorf("IPv4 header alone decoded as %+v", k)
	}
	if k, ok := d.Decode(listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: 1}.Frame(t)); ok {
		t.Errorf("ICMP after a SYN decoded as %+v", k)
	}
}

func TestDecodeAllocs(t *testing.T) {
	d := listener.NewDecoder(listenertest.Ranges())
	var frames []listener.Frame
	for _, c := range listenertest.Cases() {
		frames = append(frames, c.Frame(t))
	}
	for i, c := range listenertest.Cases() {
		if c.Want == listenertest.Malformed {
			continue // gopacket builds error values for these
		}
		f := frames[i]
		d.Decode(f) // let the layers grow their option slices once
		if n := testing.AllocsPerRun(100, func() { d.Decode(f) }); n != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", c.Name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		p    listenertest.Packet
	}{
		{"listenertest.V4SYN()", listenertest.V4SYN()},
		{"listenertest.V4UDP()", listenertest.V4UDP()},
		{"listenertest.V6SYN()", listenertest.V6SYN()},
		{"listenertest.V6UDP()", listenertest.V6UDP()},
		{"vlan-listenertest.V4SYN()", listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.Tags = []layers.EthernetType{0x8100} })},
		{"ip-listenertest.V4UDP()", listenertest.With(listenertest.V4UDP(), func(v *listenertest.Packet) { v.Link = listener.LinkIP })},
		{"v4ack", listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.ACK = true })},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := listener.NewDecoder(listenertest.Ranges())
			f := c.p.Frame(b)
			b.ReportAllocs()
			for b.Loop() {
				d.Decode(f)
			}
		})
	}
}

// truncate cuts f to n bytes.
func truncate(f listener.Frame, n int) listener.Frame {
	f.Data = f.Data[:n]
	return f
}

// TestDecodeBogusSources: a knock from an address no client knocks from
// (this network, loopback, multicast, reserved and broadcast, the IPv6
// unspecified, loopback and multicast addresses) is not a knock, on the
// fast path (plain IPv4) and the general one (IPv4 with options, IPv6);
// the addresses next to them are.
func TestDecodeBogusSources(t *testing.T) {
	d := listener.NewDecoder(listenertest.Ranges())
	for _, c := range []struct {
		src  string
		want bool
	}{
		{"0.0.0.0", false}, {"0.1.2.3", false}, {"127.0.0.1", false}, {"127.255.0.9", false},
		{"224.0.0.1", false}, {"239.255.255.250", false}, {"240.0.0.1", false}, {"255.255.255.255", false},
		{"1.0.0.1", true}, {"126.255.255.254", true}, {"128.0.0.1", true}, {"223.255.255.254", true}, {"192.0.2.7", true},
		{"::", false}, {"::1", false}, {"ff02::1", false}, {"2001:db8::7", true}, {"fe80::1", true},
	} {
		dst := "198.51.100.1"
		if netip.MustParseAddr(c.src).Is6() {
			dst = "2001:db8::1"
		}
		for _, opts := range []bool{false, true} {
			if opts && netip.MustParseAddr(c.src).Is6() {
				continue
			}
			p := listenertest.Packet{Src: c.src, Dst: dst, Proto: inet.TCP, SYN: true, DstPort: 40000, IPOptions: opts}
			if _, ok := d.Decode(p.Frame(t)); ok != c.want {
				t.Errorf("knock from %s (IPv4 options %v): Decode ok = %v, want %v", c.src, opts, ok, c.want)
			}
		}
	}
}
