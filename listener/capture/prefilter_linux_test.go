package capture

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
)

// newTestPrefilter loads a prefilter with ranges; it needs root.
func newTestPrefilter(t testing.TB, ranges []inet.Range) *Prefilter {
	t.Helper()
	return newTestPrefilterHold(t, ranges, time.Second)
}

// newTestPrefilterHold is newTestPrefilter with a hold.
func newTestPrefilterHold(t testing.TB, ranges []inet.Range, hold time.Duration) *Prefilter {
	t.Helper()
	return newTestPrefilterAs(t, ranges, hold, false)
}

// newTestPrefilterAs is newTestPrefilterHold loaded with root's
// capabilities or, asUnit, with the shipped unit's (see loadPrefilter).
func newTestPrefilterAs(t testing.TB, ranges []inet.Range, hold time.Duration, asUnit bool) *Prefilter {
	t.Helper()
	p := loadPrefilter(t, hold, asUnit)
	if err := p.SetRanges(ranges); err != nil {
		t.Fatalf("SetRanges: %v", err)
	}
	return p
}

// run runs the prefilter's program for f.Link on f in the kernel
// (BPF_PROG_TEST_RUN) and returns its verdict. The kernel gives a socket
// filter the data after the first 14 bytes (it takes them for an
// Ethernet header, and its EtherType for the frame's protocol field), so
// every frame goes in behind 14 bytes of testRunData: the program then
// sees it as a packet socket of its link type does.
func run(t testing.TB, p *Prefilter, f listener.Frame) uint32 {
	t.Helper()
	return runProg(t, p, progKey{f.Link, false}, f)
}

// runProg is run with the program of key k (the express one, say).
func runProg(t testing.TB, p *Prefilter, k progKey, f listener.Frame) uint32 {
	t.Helper()
	return runProto(t, p, k, f, frameProto(f))
}

// runProto is runProg on a frame whose protocol field is proto.
func runProto(t testing.TB, p *Prefilter, k progKey, f listener.Frame, proto uint16) uint32 {
	t.Helper()
	ret, err := p.progs[k].Run(&ebpf.RunOptions{Data: testRunData(f, proto)})
	if err != nil {
		t.Fatalf("test run (protocol %#04x): %v", proto, err)
	}
	return ret
}

// testRunData is the data BPF_PROG_TEST_RUN takes for the frame f with
// the protocol field proto: f behind a dummy Ethernet header whose
// EtherType is proto (the kernel sets skb->protocol from it).
func testRunData(f listener.Frame, proto uint16) []byte {
	data := make([]byte, 14, 14+len(f.Data))
	binary.BigEndian.PutUint16(data[12:], proto)
	return append(data, f.Data...)
}

// frameProto returns the protocol field a received frame f has: its
// EtherType on listener.LinkEthernet, the EtherType of its IP version on
// listener.LinkIP.
func frameProto(f listener.Frame) uint16 {
	if f.Link == listener.LinkEthernet && len(f.Data) >= 14 {
		return binary.BigEndian.Uint16(f.Data[12:])
	}
	return ipProto(f.Data)
}

// pfStats returns p's counters.
func pfStats(t testing.TB, p *Prefilter) PrefilterStats {
	t.Helper()
	s, err := p.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// anchorSet returns the anchor ports of a table that anchors ports of
// TCP and UDP.
func anchorSet(tcp, udp []uint16) listener.AnchorPorts {
	var a listener.AnchorPorts
	for pi, ports := range [][]uint16{tcp, udp} {
		for _, port := range ports {
			a.Ports[pi][port>>6] |= 1 << (port & 63)
		}
	}
	return a
}

func publish(t testing.TB, p *Prefilter, a listener.AnchorPorts) {
	t.Helper()
	if err := p.Publish(a); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// TestPrefilterAllAnchored gives every port as an anchor: the prefilter
// then passes exactly the frames the classic Filter passes (the same
// header walk), for every fixture frame.
func TestPrefilterAllAnchored(t *testing.T) {
	checkAllAnchored(t, newTestPrefilter(t, listenertest.Ranges()))
}

// checkAllAnchored is TestPrefilterAllAnchored for the fresh prefilter p.
func checkAllAnchored(t *testing.T, p *Prefilter) {
	t.Helper()
	var all listener.AnchorPorts
	for pi := range 2 {
		for i := range all.Ports[pi] {
			all.Ports[pi][i] = ^uint64(0)
		}
	}
	publish(t, p, all)
	for _, c := range listenertest.Cases() {
		f := c.Frame(t)
		if f.Link != listener.LinkEthernet && f.Link != listener.LinkIP {
			continue
		}
		n := run(t, p, f)
		if got := n > 0; got != c.BPF {
			t.Errorf("%s: prefilter accepts = %v (returned %d), want %v", c.Name, got, n, c.BPF)
		}
	}
}

// pfCheck is a frame, the verdict the prefilter must give it and the
// counter it must count (none for a frame that is no knock into a range).
type pfCheck struct {
	what string
	p    listenertest.Packet
	pass bool
	// delta of the ring program's counters
	anchors, tracked, dropped uint64
}

// pfApply runs each check through the ring program and then the express
// one: both must give its verdict, the ring program count it as said, the
// express program count nothing.
func pfApply(t *testing.T, p *Prefilter, checks []pfCheck) {
	t.Helper()
	for _, c := range checks {
		f := c.p.Frame(t)
		before := pfStats(t, p)
		n := run(t, p, f)
		if got := n > 0; got != c.pass {
			t.Errorf("%s: ring program passes = %v (returned %d), want %v", c.what, got, n, c.pass)
		}
		after := pfStats(t, p)
		want := before
		want.Anchors += c.anchors
		want.Tracked += c.tracked
		want.Dropped += c.dropped
		want.Gens = after.Gens
		if after != want {
			t.Errorf("%s: counters %+v after %+v, want %+v", c.what, after, before, want)
		}
		n = runProg(t, p, progKey{f.Link, true}, f)
		if got := n > 0; got != c.pass {
			t.Errorf("%s: express program passes = %v (returned %d), want %v", c.what, got, n, c.pass)
		}
		if s := pfStats(t, p); s.Anchors != after.Anchors || s.Tracked != after.Tracked || s.Dropped != after.Dropped {
			t.Errorf("%s: the express program changed the counters from %+v to %+v", c.what, after, s)
		}
	}
}

// TestPrefilterRule1 checks rule 1 in the kernel, for both link types,
// IPv4 and IPv6, TCP and UDP: a knock from a new source passes only at an
// anchor, which marks the source; a marked source's knocks pass at any
// port of a range, never outside the ranges nor as a TCP segment that is
// no SYN; another source is still dropped. It runs the programs loaded
// with root's capabilities and with the shipped unit's.
func TestPrefilterRule1(t *testing.T) {
	type family struct{ name, a, b, dst string }
	families := []family{
		{"IPv4", "192.0.2.10", "192.0.2.11", "198.51.100.1"},
		{"IPv6", "2001:db8::10", "2001:db8::11", "2001:db8::1"},
	}
	type proto struct {
		proto                   inet.Proto
		anchor, other, far, out uint16 // an anchor; in-range non-anchors in both ranges; outside the ranges
	}
	protos := []proto{
		{inet.TCP, 40100, 40200, 40900, 41500},
		{inet.UDP, 50010, 50020, 50250, 50150},
	}
	for _, asUnit := range []bool{false, true} {
		for _, link := range []listener.LinkType{listener.LinkEthernet, listener.LinkIP} {
			for _, fam := range families {
				for _, pr := range protos {
					t.Run(fmt.Sprintf("%s/%v/%s/%v", loadName(asUnit), link, fam.name, pr.proto), func(t *testing.T) {
						p := newTestPrefilterAs(t, listenertest.Ranges(), time.Second, asUnit)
						publish(t, p, anchorSet([]uint16{40100}, []uint16{50010}))
						k := func(src string, port uint16) listenertest.Packet {
							return listenertest.Packet{Link: link, Src: src, Dst: fam.dst, Proto: pr.proto, SYN: true, DstPort: port}
						}
						checks := []pfCheck{
							{what: "new source, non-anchor", p: k(fam.a, pr.other), dropped: 1},
							{what: "new source, outside the ranges", p: k(fam.a, pr.out)},
							{what: "new source, anchor", p: k(fam.a, pr.anchor), pass: true, anchors: 1},
							{what: "marked source, non-anchor", p: k(fam.a, pr.other), pass: true, tracked: 1},
							{what: "marked source, other range", p: k(fam.a, pr.far), pass: true, tracked: 1},
							{what: "marked source, anchor again", p: k(fam.a, pr.anchor), pass: true, anchors: 1},
							{what: "marked source twice, non-anchor", p: k(fam.a, pr.other), pass: true, tracked: 1},
							{what: "marked source, outside the ranges", p: k(fam.a, pr.out)},
							{what: "other source, non-anchor", p: k(fam.b, pr.other), dropped: 1},
							{what: "other source, other range", p: k(fam.b, pr.far), dropped: 1},
						}
						if pr.proto == inet.TCP {
							synAck := k(fam.a, pr.other)
							synAck.ACK = true
							plain := k(fam.a, pr.other)
							plain.SYN, plain.ACK = false, true
							checks = append(checks,
								pfCheck{what: "marked source, SYN-ACK", p: synAck},
								pfCheck{what: "marked source, ACK", p: plain})
						}
						pfApply(t, p, checks)
					})
				}
			}
		}
	}
}

// TestPrefilterMappedSource marks a source by its IPv4 address and checks
// that its IPv4-mapped IPv6 spelling is the same source, and the other way
// round.
func TestPrefilterMappedSource(t *testing.T) {
	p := newTestPrefilter(t, listenertest.Ranges())
	publish(t, p, anchorSet([]uint16{40100}, nil))
	syn := func(src, dst string, port uint16) listenertest.Packet {
		return listenertest.Packet{Src: src, Dst: dst, Proto: inet.TCP, SYN: true, DstPort: port}
	}
	pfApply(t, p, []pfCheck{
		{what: "::ffff:1.2.3.4 before its anchor", p: syn("::ffff:1.2.3.4", "2001:db8::1", 40200), dropped: 1},
		{what: "1.2.3.4 at an anchor", p: syn("1.2.3.4", "198.51.100.1", 40100), pass: true, anchors: 1},
		{what: "::ffff:1.2.3.4 after the anchor of 1.2.3.4", p: syn("::ffff:1.2.3.4", "2001:db8::1", 40200), pass: true, tracked: 1},
		{what: "5.6.7.8 before its anchor", p: syn("5.6.7.8", "198.51.100.1", 40200), dropped: 1},
		{what: "::ffff:5.6.7.8 at an anchor", p: syn("::ffff:5.6.7.8", "2001:db8::1", 40100), pass: true, anchors: 1},
		{what: "5.6.7.8 after the anchor of ::ffff:5.6.7.8", p: syn("5.6.7.8", "198.51.100.1", 40200), pass: true, tracked: 1},
		{what: "2001:db8::5:6:7:8, not mapped", p: syn("2001:db8::506:708", "2001:db8::1", 40200), dropped: 1},
	})
}

// TestPrefilterPublishKeeps publishes 4 anchor sets: the anchors of the
// latest 3 pass, the first set's no longer do. Anchors outside the ranges
// never pass, nor mark their source.
func TestPrefilterPublishKeeps(t *testing.T) {
	p := newTestPrefilter(t, listenertest.Ranges())
	anchors := []uint16{40101, 40102, 40103, 40104}
	for _, a := range anchors {
		publish(t, p, anchorSet([]uint16{a, 41500}, []uint16{50150}))
	}
	for i, a := range anchors {
		src := fmt.Sprintf("203.0.113.%d", 10+i)
		f := listenertest.Packet{Src: src, Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: a}.Frame(t)
		want := i > 0
		if got := run(t, p, f) > 0; got != want {
			t.Errorf("a new source at the anchor %d of set %d of 4: passes = %v, want %v", a, i+1, got, want)
		}
	}
	for _, c := range []struct {
		proto inet.Proto
		port  uint16
	}{{inet.TCP, 41500}, {inet.UDP, 50150}} {
		k := listenertest.Packet{Src: "203.0.113.50", Dst: "198.51.100.1", Proto: c.proto, SYN: true, DstPort: c.port}
		if run(t, p, k.Frame(t)) > 0 {
			t.Errorf("%v anchor %d outside the ranges: passes", c.proto, c.port)
		}
	}
	next := listenertest.Packet{Src: "203.0.113.50", Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: 40200}
	if run(t, p, next.Frame(t)) > 0 {
		t.Error("a source whose only knocks went to anchors outside the ranges passes at a non-anchor: it was marked")
	}
}

// TestPrefilterSetRangesInvalid gives SetRanges an invalid range: an
// error naming it, and the old ranges stay.
func TestPrefilterSetRangesInvalid(t *testing.T) {
	p := newTestPrefilter(t, listenertest.Ranges())
	publish(t, p, anchorSet([]uint16{40100}, nil))
	f := listenertest.Packet{Src: "192.0.2.10", Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: 40100}.Frame(t)
	if run(t, p, f) == 0 {
		t.Fatal("a knock at an anchor is dropped")
	}
	bad := []inet.Range{{Proto: inet.TCP, Lo: 30000, Hi: 30999}, {Proto: inet.TCP, Lo: 40999, Hi: 40000}}
	err := p.SetRanges(bad)
	if err == nil {
		t.Fatal("SetRanges with lo > hi: no error")
	}
	if !strings.Contains(err.Error(), "knock range 1") || !strings.Contains(err.Error(), "lo > hi") {
		t.Errorf("SetRanges error %q does not name range 1 and what is wrong with it", err)
	}
	if run(t, p, f) == 0 {
		t.Error("after a rejected SetRanges, a knock that passed is dropped: the ranges changed")
	}
}

// TestNewPrefilterHold needs no root: a hold below the minimum is refused
// before anything is loaded.
func TestNewPrefilterHold(t *testing.T) {
	p, err := NewPrefilter(MinPrefilterHold - time.Nanosecond)
	if err == nil {
		p.Close()
		t.Fatal("NewPrefilter with a hold below MinPrefilterHold: no error")
	}
	if !strings.Contains(err.Error(), "hold") {
		t.Errorf("NewPrefilter error %q does not name the hold", err)
	}
}

// waitGens waits until p has begun at least n generations, for at most
// 5 seconds, and returns the count.
func waitGens(t *testing.T, p *Prefilter, n uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if g := pfStats(t, p).Gens; g >= n {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, %d generations begun, want %d", pfStats(t, p).Gens, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPrefilterGenerations marks a source with a short hold: it still
// passes after one rotation of the seen bitmap and is dropped after two.
// A check that a rotation overtook (the machine is busy) is tried again,
// with another source.
func TestPrefilterGenerations(t *testing.T) {
	const hold = 50 * time.Millisecond
	p := newTestPrefilterHold(t, listenertest.Ranges(), hold)
	publish(t, p, anchorSet([]uint16{40100}, nil))
	if err := p.SetHold(MinPrefilterHold - time.Nanosecond); err == nil {
		t.Error("SetHold below MinPrefilterHold: no error")
	}
	syn := func(src string, port uint16) listener.Frame {
		return listenertest.Packet{Src: src, Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: port}.Frame(t)
	}
	const attempts = 5
	done := false
	for i := 0; i < attempts && !done; i++ {
		src := fmt.Sprintf("203.0.113.%d", 100+i)
		g0 := pfStats(t, p).Gens
		if run(t, p, syn(src, 40100)) == 0 {
			t.Fatal("a knock at an anchor is dropped")
		}
		if pfStats(t, p).Gens != g0 {
			continue // rotated while marking
		}
		g := waitGens(t, p, g0+1)
		passed := run(t, p, syn(src, 40200)) > 0
		if g != g0+1 || pfStats(t, p).Gens != g0+1 {
			continue // a second rotation overtook the check
		}
		if !passed {
			t.Fatalf("%s: dropped one rotation after its anchor knock", src)
		}
		waitGens(t, p, g0+2)
		if run(t, p, syn(src, 40200)) > 0 {
			t.Fatalf("%s: passes two rotations after its anchor knock", src)
		}
		done = true
	}
	if !done {
		t.Fatalf("every one of %d attempts was overtaken by a rotation", attempts)
	}
	if err := p.SetHold(time.Second); err != nil {
		t.Errorf("SetHold(1s): %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestPrefilterFastSlow crosses the program's two header walks: a plain
// IPv4 SYN of 54 bytes or more takes the fast path (one copy of the
// headers), a frame with IPv4 options, a VLAN tag, or one too short for the
// copy (a UDP knock without payload) the slow one. A source marked on one
// path is found on the other, and each path drops a non-first fragment.
func TestPrefilterFastSlow(t *testing.T) {
	p := newTestPrefilter(t, listenertest.Ranges())
	publish(t, p, fastSlowAnchors)
	pfApply(t, p, fastSlowChecks())
}

// fastSlowAnchors are the anchors fastSlowChecks expect.
var fastSlowAnchors = anchorSet([]uint16{40100}, []uint16{50010})

// fastSlowChecks are the checks of TestPrefilterFastSlow, for a fresh
// prefilter with listenertest.Ranges() and fastSlowAnchors.
func fastSlowChecks() []pfCheck {
	fast := func(src string, port uint16) listenertest.Packet {
		return listenertest.Packet{Src: src, Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: port}
	}
	opts := func(src string, port uint16) listenertest.Packet { v := fast(src, port); v.IPOptions = true; return v }
	vlan := func(src string, port uint16) listenertest.Packet {
		v := fast(src, port)
		v.Tags = []layers.EthernetType{layers.EthernetTypeDot1Q}
		return v
	}
	udp := func(src string, port uint16) listenertest.Packet {
		return listenertest.Packet{Src: src, Dst: "198.51.100.1", Proto: inet.UDP, DstPort: port}
	}
	frag := func(v listenertest.Packet) listenertest.Packet { v.FragOff = 8; return v }
	ipLink := func(v listenertest.Packet) listenertest.Packet { v.Link = listener.LinkIP; return v }
	return []pfCheck{
		{what: "fast, anchor", p: fast("192.0.2.1", 40100), pass: true, anchors: 1},
		{what: "slow (options) after a fast anchor", p: opts("192.0.2.1", 40200), pass: true, tracked: 1},
		{what: "slow (VLAN) after a fast anchor", p: vlan("192.0.2.1", 40300), pass: true, tracked: 1},
		{what: "slow (short UDP) after a fast anchor", p: udp("192.0.2.1", 50050), pass: true, tracked: 1},
		{what: "slow (options), anchor", p: opts("192.0.2.2", 40100), pass: true, anchors: 1},
		{what: "fast after a slow anchor", p: fast("192.0.2.2", 40200), pass: true, tracked: 1},
		{what: "fast, IP link, after a slow anchor", p: ipLink(fast("192.0.2.2", 40250)), pass: true, tracked: 1},
		{what: "slow (short UDP), anchor", p: udp("192.0.2.3", 50010), pass: true, anchors: 1},
		{what: "fast after a UDP anchor", p: fast("192.0.2.3", 40200), pass: true, tracked: 1},
		{what: "fast, a stranger", p: fast("192.0.2.9", 40200), dropped: 1},
		{what: "fast, non-first fragment of a marked source", p: frag(fast("192.0.2.1", 40200))},
		{what: "slow, non-first fragment of a marked source", p: frag(opts("192.0.2.1", 40200))},
		{what: "fast, SYN-ACK of a marked source", p: func() listenertest.Packet { v := fast("192.0.2.1", 40200); v.ACK = true; return v }()},
	}
}

// TestPrefilterAnyProtocol: on listener.LinkIP (a capture on all
// interfaces) the prefilter passes a knock only if the frame's protocol
// field names the IP version it starts with, as Filter does: at an anchor,
// the ring program and the express one drop the knocks of each IP version
// as the other version, as EtherType 0x88b5 or 0x8100, or with no
// protocol, and count none of them (they are no knocks); the same knocks
// with the right protocol pass. The frames take both header walks: a
// plain IPv4 SYN the fast one, IPv4 with options or a short UDP datagram
// and IPv6 the slow one (a UDP knock of IPv4 shorter than the fast
// path's copy too, except as IPv6). On listener.LinkEthernet the EtherType in the
// frame decides, whatever the protocol field says. Loaded with root's
// capabilities and with the unit's.
func TestPrefilterAnyProtocol(t *testing.T) {
	ip := func(v listenertest.Packet) listenertest.Packet { v.Link = listener.LinkIP; return v }
	syn4 := listenertest.Packet{Src: "192.0.2.10", Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: 40100}
	opts4 := listenertest.With(syn4, func(v *listenertest.Packet) { v.IPOptions = true })
	udp4 := listenertest.Packet{Src: "192.0.2.10", Dst: "198.51.100.1", Proto: inet.UDP, DstPort: 50010}
	syn6 := listenertest.Packet{Src: "2001:db8::10", Dst: "2001:db8::1", Proto: inet.TCP, SYN: true, DstPort: 40100}
	udp6 := listenertest.Packet{Src: "2001:db8::10", Dst: "2001:db8::1", Proto: inet.UDP, DstPort: 50010, Payload: []byte("knock")}
	for _, asUnit := range []bool{false, true} {
		t.Run(loadName(asUnit), func(t *testing.T) {
			p := newTestPrefilterAs(t, listenertest.Ranges(), time.Second, asUnit)
			publish(t, p, anchorSet([]uint16{40100}, []uint16{50010}))
			for _, v := range []listenertest.Packet{syn4, opts4, udp4, syn6, udp6} {
				f := ip(v).Frame(t)
				for _, express := range []bool{false, true} {
					for _, proto := range []uint16{ethIPv4, ethIPv6, ethLocal, ethDot1Q, ethNoType} {
						if proto == ethIPv6 && len(f.Data) < 40 {
							// The test run refuses (EINVAL) a frame shorter
							// than an IPv6 header as IPv6; the kernel's
							// receive path does not (TestCaptureAnyProtocol).
							continue
						}
						before := pfStats(t, p)
						n := runProto(t, p, progKey{listener.LinkIP, express}, f, proto)
						want := proto == ipProto(f.Data)
						if got := n > 0; got != want {
							t.Errorf("%v from %s, IP link, protocol %#04x (express %v): passes = %v (returned %d), want %v", v.Proto, v.Src, proto, express, got, n, want)
						}
						after := pfStats(t, p)
						counted := after.Anchors + after.Tracked + after.Dropped - before.Anchors - before.Tracked - before.Dropped
						wantCounted := uint64(0)
						if want && !express {
							wantCounted = 1 // at an anchor, by the ring program
						}
						if counted != wantCounted {
							t.Errorf("%v from %s, IP link, protocol %#04x (express %v): counted %d times (%+v after %+v), want %d", v.Proto, v.Src, proto, express, counted, after, before, wantCounted)
						}
					}
				}
				eth := v.Frame(t)
				for _, proto := range []uint16{ethIPv4, ethIPv6, ethLocal, ethNoType} {
					if n := runProto(t, p, progKey{listener.LinkEthernet, false}, eth, proto); n == 0 {
						t.Errorf("%v from %s, Ethernet, EtherType %#04x in the frame, protocol field %#04x: dropped, want passed", v.Proto, v.Src, frameProto(eth), proto)
					}
				}
			}
		})
	}
}

// TestPrefilterKey: every prefilter draws its own key for the seen
// bitmap's hash, so the bit a source lands on differs from load to load
// (and cannot be chosen from this source code); a marked source passes
// under either key.
func TestPrefilterKey(t *testing.T) {
	seenBits := func(p *Prefilter) []int {
		buf := make([]byte, 2*pfSeenWords*8)
		if _, err := p.mem.ReadAt(buf, pfSeenOff*8); err != nil {
			t.Fatal(err)
		}
		var set []int
		for i, b := range buf {
			for j := range 8 {
				if b&(1<<j) != 0 {
					set = append(set, i*8+j)
				}
			}
		}
		return set
	}
	anchor := listenertest.Packet{Src: "192.0.2.77", Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: 40100}
	next := listenertest.Packet{Src: "192.0.2.77", Dst: "198.51.100.1", Proto: inet.TCP, SYN: true, DstPort: 40200}
	var bits [][]int
	var keys [][4]uint64
	for range 2 {
		p := newTestPrefilter(t, listenertest.Ranges())
		for _, k := range p.key {
			if k&1 == 0 {
				t.Errorf("key %#x is even: a multiplier must be odd", k)
			}
		}
		publish(t, p, anchorSet([]uint16{40100}, nil))
		if run(t, p, anchor.Frame(t)) == 0 || run(t, p, next.Frame(t)) == 0 {
			t.Fatal("a source marked at an anchor does not pass its next knock")
		}
		bits = append(bits, seenBits(p))
		keys = append(keys, p.key)
	}
	if keys[0] == keys[1] {
		t.Errorf("two prefilters drew the same key %#x", keys[0])
	}
	if len(bits[0]) != 1 || len(bits[1]) != 1 {
		t.Fatalf("seen bits after one anchor knock: %v and %v, want one each", bits[0], bits[1])
	}
	if bits[0][0] == bits[1][0] {
		t.Errorf("the source landed on bit %d under both keys (odds 2^-20)", bits[0][0])
	}
}
