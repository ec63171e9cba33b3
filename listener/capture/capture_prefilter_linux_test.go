package capture

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
	"golang.org/x/sys/unix"
)

// TestCapturePrefilter captures with the prefilter as the kernel filter,
// with and without the express socket: a peer's knocks at non-anchor
// ports are not received until it knocks at an anchor; from then on its
// knocks into the ranges are, once each and in order (the express socket
// and the ring run the program each, and must not duplicate a frame);
// Conn.SetRanges sets the prefilter's ranges; the prefilter's counters
// count what was sent.
func TestCapturePrefilter(t *testing.T) {
	for _, noExpress := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoExpress=%v", noExpress), func(t *testing.T) {
			testCapturePrefilter(t, noExpress)
		})
	}
}

func testCapturePrefilter(t *testing.T, noExpress bool) {
	tb := newTestbed(t)
	// A long hold: no rotation forgets the peer during the test.
	p := newTestPrefilterHold(t, nil, time.Minute)
	publish(t, p, anchorSet([]uint16{40100}, []uint16{50100}))
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges, Prefilter: p, NoExpress: noExpress})
	if noExpress != (c.ex == nil) {
		t.Fatalf("NoExpress %v: express socket %v", noExpress, c.ex != nil)
	}
	ch := collect(c, sysRanges)
	eq := cmp.Comparer(func(a, b listener.Knock) bool { return a == b })

	// TCP from the peer's IPv4 address, UDP from its IPv6 one: two
	// sources, each marked by its own anchor knock.
	v4, v6 := addr("192.0.2.2"), addr("2001:db8:1::2")
	sendSYN(t, tb.cli, "192.0.2.1", 40200)
	sendSYN(t, tb.cli, "192.0.2.1", 40201)
	sendSYN(t, tb.cli, "192.0.2.1", 40100)
	sendSYN(t, tb.cli, "192.0.2.1", 40200)
	want := []listener.Knock{{Src: v4, Proto: inet.TCP, Port: 40100}, {Src: v4, Proto: inet.TCP, Port: 40200}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 40200)), eq); diff != "" {
		t.Errorf("TCP knocks (-want +got):\n%s", diff)
	}
	sendUDP(t, tb.cli, "2001:db8:1::1", 50200)
	sendUDP(t, tb.cli, "2001:db8:1::1", 50100)
	sendUDP(t, tb.cli, "2001:db8:1::1", 50200)
	want = []listener.Knock{{Src: v6, Proto: inet.UDP, Port: 50100}, {Src: v6, Proto: inet.UDP, Port: 50200}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 50200)), eq); diff != "" {
		t.Errorf("UDP knocks (-want +got):\n%s", diff)
	}
	noMore(t, ch)
	wantStats := PrefilterStats{Anchors: 2, Tracked: 2, Dropped: 3}
	if s := pfStats(t, p); s != wantStats {
		t.Errorf("prefilter counters %+v, want %+v", s, wantStats)
	}
	if s := c.Stats(); s.Read != 4 {
		t.Errorf("capture read %d frames, want 4", s.Read)
	}

	// Narrower TCP ranges: 40600 is no longer a knock, even from the
	// marked source; 40300 still is.
	narrow := []inet.Range{{Proto: inet.TCP, Lo: 40000, Hi: 40499}, {Proto: inet.UDP, Lo: 50000, Hi: 50999}}
	if err := c.SetRanges(narrow); err != nil {
		t.Fatalf("SetRanges: %v", err)
	}
	sendSYN(t, tb.cli, "192.0.2.1", 40600)
	sendSYN(t, tb.cli, "192.0.2.1", 40300)
	want = []listener.Knock{{Src: v4, Proto: inet.TCP, Port: 40300}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 40300)), eq); diff != "" {
		t.Errorf("knocks after SetRanges (-want +got):\n%s", diff)
	}
	noMore(t, ch)
	wantStats.Tracked++
	if s := pfStats(t, p); s != wantStats {
		t.Errorf("prefilter counters after SetRanges %+v, want %+v", s, wantStats)
	}
	out := listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: inet.TCP, SYN: true, DstPort: 40600}.Frame(t)
	if run(t, p, out) > 0 {
		t.Error("after Conn.SetRanges, the prefilter passes a knock to a port no longer in the ranges")
	}

	// An invalid range: an error naming it, and nothing changes.
	err := c.SetRanges([]inet.Range{{Proto: inet.TCP, Lo: 40499, Hi: 40000}})
	if err == nil || !strings.Contains(err.Error(), "knock range 0") {
		t.Errorf("SetRanges with lo > hi: error %v, want one naming knock range 0", err)
	}
	sendSYN(t, tb.cli, "192.0.2.1", 40301)
	want = []listener.Knock{{Src: v4, Proto: inet.TCP, Port: 40301}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 40301)), eq); diff != "" {
		t.Errorf("knocks after a rejected SetRanges (-want +got):\n%s", diff)
	}
}

// noMore fails if ch yields a frame within 50 ms: several block timeouts,
// so a copy of a frame already returned would be out of the ring by then.
func noMore(t *testing.T, ch <-chan result) {
	t.Helper()
	select {
	case r := <-ch:
		t.Errorf("a frame more than expected: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestCapturePrefilterBurst floods the capture with knocks the prefilter
// drops (a source that never knocked at an anchor): none reaches the
// capture, so only the prefilter's drop count can tell the reader of the
// flood, and the express socket must leave the receive path all the same
// (prefilterBurst). After the flood it comes back, and a knock at an
// anchor and the next one from that source reach it.
//
// Which copy of a knock ReadFrame returns, the express socket's or the
// ring's, depends on how soon the reader runs: it may find the ring's copy
// first; or, when it comes to the first knock's express copy after the
// second knock is in the ring too, it cannot tell that frame from one the
// express socket missed, and takes both from the ring, in order (next).
// With both CPUs busy that happened about one run in three, so the test
// checks that the express socket got the knocks (the kernel's count of
// what its filter passed), not which copy came out first.
func TestCapturePrefilterBurst(t *testing.T) {
	tb := newTestbed(t)
	p := newTestPrefilterHold(t, nil, time.Minute)
	publish(t, p, anchorSet([]uint16{40100}, nil))
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges, Prefilter: p})
	ch := collect(c, sysRanges)

	// A flood is a burst when the reader finds busyFrames drops per
	// busyWindow on average since its previous look. On a loaded machine
	// the sender may not reach that rate (about one run in thirty with
	// both CPUs busy): such a flood is not a burst, by design, so the
	// test sends up to floods of them.
	const flood, floods = 20000, 5 // UDP from 192.0.2.2, which knocks at no anchor
	frames := burstFrames(t, tb, flood)
	sent := 0
	for sent < floods && c.ex.parks.Load() == 0 {
		sendRaw(t, tb.cli, tb.cliIf, frames...)
		sent++
		for deadline := time.Now().Add(time.Second); c.ex.parks.Load() == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		}
	}
	if c.ex.parks.Load() == 0 {
		t.Fatalf("the express socket stayed in the receive path during %d floods the prefilter dropped (%+v)", floods, pfStats(t, p))
	}
	if s := pfStats(t, p); s.Dropped < uint64(sent*flood/2) {
		t.Errorf("prefilter dropped %d of the %d flood frames, want most of them (%+v)", s.Dropped, sent*flood, s)
	}
	noMore(t, ch)

	// The kernel may still be dropping the flood's tail when the express
	// socket comes back (its softirq work waits behind busy CPUs), and the
	// reader's next look at the drop count then takes it out again: a
	// round of knocks during which that happened is sent again, up to
	// rounds times.
	const rounds = 3
	src := addr("192.0.2.2")
	want := []listener.Knock{{Src: src, Proto: inet.TCP, Port: 40100}, {Src: src, Proto: inet.TCP, Port: 40200}}
	for round := 1; ; round++ {
		waitExpressBack(t, c)
		expressPassed(t, c) // PACKET_STATISTICS counts from the latest read
		parks := c.ex.parks.Load()
		sendSYN(t, tb.cli, "192.0.2.1", 40100)
		sendSYN(t, tb.cli, "192.0.2.1", 40200)
		if diff := cmp.Diff(want, knocks(t, until(t, ch, 40200)), cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
			t.Errorf("knocks after the flood (-want +got):\n%s", diff)
		}
		got := expressPassed(t, c)
		// Read in the order the reader writes them backwards: it turns
		// the socket off, sets moving, and the move counts a park.
		if !c.ex.on.Load() || c.ex.moving.Load() || c.ex.parks.Load() != parks {
			if round == rounds {
				t.Fatalf("the express socket left the receive path during each of %d rounds of knocks after the flood (%+v)", rounds, pfStats(t, p))
			}
			continue
		}
		if got != 2 {
			t.Errorf("the express socket's filter passed %d frames after the flood, want the 2 knocks", got)
		}
		break
	}
}

// expressPassed returns how many frames the kernel queued on c's express
// socket (its filter passed them) since the previous call: whether the
// reader has read them yet or not.
func expressPassed(t *testing.T, c *Conn) uint64 {
	t.Helper()
	c.fdMu.RLock()
	defer c.fdMu.RUnlock()
	st, err := unix.GetsockoptTpacketStats(c.ex.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		t.Fatalf("express socket: PACKET_STATISTICS: %v", err)
	}
	return uint64(st.Packets)
}
