package listener

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket/layers"
	"github.com/tknock/tknock/inet"
)

func TestDecodeFrames(t *testing.T) {
	d := NewDecoder(testRanges)
	var want DecoderStats
	for _, c := range frameCases {
		f := c.frame(t)
		k, ok := d.Decode(f)
		want.Frames++
		switch c.want {
		case isKnock:
			want.Knocks++
		case isIgnored:
			want.Ignored++
		case isMalformed:
			want.Malformed++
		}
		if got := d.Stats(); got != want {
			t.Errorf("%s: stats = %+v, want %+v", c.name, got, want)
			want = got
		}
		if ok != (c.want == isKnock) {
			t.Errorf("%s: Decode ok = %v, want %v", c.name, ok, c.want == isKnock)
			continue
		}
		if !ok {
			if k != (Knock{}) {
				t.Errorf("%s: not a knock, but Decode returned %+v", c.name, k)
			}
			continue
		}
		if !k.Time.Equal(fixtureTime) {
			t.Errorf("%s: Time = %v, want %v", c.name, k.Time, fixtureTime)
		}
		if !k.Src.IsValid() || k.Src.Zone() != "" || k.Src.Is4In6() {
			t.Errorf("%s: Src = %v, want a valid unmapped address without zone", c.name, k.Src)
		}
	}
}

// TestDecodeKnockFields checks every field of decoded knocks.
func TestDecodeKnockFields(t *testing.T) {
	d := NewDecoder(testRanges)
	for _, c := range []struct {
		p    pkt
		want Knock
	}{
		{v4syn, Knock{Src: netip.MustParseAddr("192.0.2.2"), Proto: inet.TCP, Port: 40000, Time: fixtureTime}},
		{with(v4udp, func(v *pkt) { v.link = LinkIP }), Knock{Src: netip.MustParseAddr("192.0.2.2"), Proto: inet.UDP, Port: 50050, Time: fixtureTime}},
		{v6syn, Knock{Src: netip.MustParseAddr("2001:db8:1::2"), Proto: inet.TCP, Port: 40999, Time: fixtureTime}},
		{with(v6udp, func(v *pkt) { v.src = "fe80::2" }), Knock{Src: netip.MustParseAddr("fe80::2"), Proto: inet.UDP, Port: 50299, Time: fixtureTime}},
	} {
		k, ok := d.Decode(c.p.frame(t))
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
	d := NewDecoder(nil)
	f := v4syn.frame(t)
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
	if _, ok := d.Decode(v4udp.frame(t)); !ok {
		t.Error("valid range next to invalid ones did not match")
	}
}

// TestDecodeStaleLayers checks that fields of a layer decoded for an
// earlier frame never leak into a later one.
func TestDecodeStaleLayers(t *testing.T) {
	d := NewDecoder(testRanges)
	if _, ok := d.Decode(v4syn.frame(t)); !ok {
		t.Fatal("v4 syn not a knock")
	}
	// Truncated after the IPv4 header: the TCP layer still holds the SYN.
	if k, ok := d.Decode(truncated(v4syn, 14+20)(t)); ok {
		t.Errorf("IPv4 header alone decoded as %+v", k)
	}
	if k, ok := d.Decode(p(pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: 1})(t)); ok {
		t.Errorf("ICMP after a SYN decoded as %+v", k)
	}
}

func TestDecodeAllocs(t *testing.T) {
	d := NewDecoder(testRanges)
	var frames []Frame
	for _, c := range frameCases {
		frames = append(frames, c.frame(t))
	}
	for i, c := range frameCases {
		if c.want == isMalformed {
			continue // gopacket builds error values for these
		}
		f := frames[i]
		d.Decode(f) // let the layers grow their option slices once
		if n := testing.AllocsPerRun(100, func() { d.Decode(f) }); n != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", c.name, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		p    pkt
	}{
		{"v4syn", v4syn},
		{"v4udp", v4udp},
		{"v6syn", v6syn},
		{"v6udp", v6udp},
		{"vlan-v4syn", with(v4syn, func(v *pkt) { v.tags = []layers.EthernetType{0x8100} })},
		{"ip-v4udp", with(v4udp, func(v *pkt) { v.link = LinkIP })},
		{"v4ack", with(v4syn, func(v *pkt) { v.ack = true })},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := NewDecoder(testRanges)
			f := c.p.frame(b)
			b.ReportAllocs()
			for b.Loop() {
				d.Decode(f)
			}
		})
	}
}
