package listener

import (
	"testing"
	"time"

	"github.com/tknock/tknock/internal/nstest"
)

// TestCaptureExpressMerge sends a burst of knock frames much larger than
// the express socket holds while nobody reads: the first ones go to the
// express socket, the rest roll over to the ring. ReadFrame must return
// every frame once, in the order sent, with nothing dropped; and a lone
// knock afterwards must come through the express socket.
func TestCaptureExpressMerge(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, CaptureConfig{Interface: tb.srvIf, Ranges: sysRanges})
	if c.ex == nil {
		t.Fatal("no express socket: joining the fanout group failed")
	}

	const burst = 2000
	frames := make([][]byte, burst)
	for i := range frames {
		frames[i] = pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: udp, dport: 50000 + uint16(i%1000), dstMAC: tb.srvMAC,
			payload: []byte{byte(i >> 8), byte(i)}}.frame(t).Data
	}
	if c.Buffered() {
		t.Error("Buffered before any frame was sent")
	}
	sendRaw(t, tb.cli, tb.cliIf, frames...)
	time.Sleep(20 * time.Millisecond) // every ring block retired
	if !c.Buffered() {
		t.Error("not Buffered with the burst in the ring")
	}

	ch := collect(c, sysRanges)
	var prev time.Time
	for i := range burst {
		var r result
		select {
		case r = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d of %d: none after 5s", i, burst)
		}
		d := r.frame.Data
		const at = 14 + 20 + 8 // Ethernet, IPv4, UDP: the payload
		if !r.ok || len(d) < at+2 {
			t.Fatalf("frame %d: not a knock: % x", i, d)
		}
		if got := int(d[at])<<8 | int(d[at+1]); got != i {
			t.Fatalf("frame %d: got frame %d of the burst (port %d), want them in the order sent", i, got, r.knock.Port)
		}
		if r.frame.Time.Before(prev) {
			t.Errorf("frame %d: captured at %v, before the frame before it (%v)", i, r.frame.Time, prev)
		}
		prev = r.frame.Time
	}
	s := c.Stats()
	if s.Drops != 0 || s.Read != burst {
		t.Errorf("after the burst: %d frames read, %d dropped; want %d and 0", s.Read, s.Drops, burst)
	}
	if s.Express == 0 || s.Express >= burst {
		t.Errorf("after the burst: %d of %d frames came through the express socket; want some, and the rest through the ring", s.Express, burst)
	}

	before := s.Express
	time.Sleep(30 * time.Millisecond) // the burst is over for the reader too
	sendUDP(t, tb.cli, "192.0.2.1", 50500)
	select {
	case r := <-ch:
		if !r.ok || r.knock.Port != 50500 {
			t.Fatalf("lone knock: got %+v, want a knock to 50500", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lone knock: not read after 5s")
	}
	if s := c.Stats(); s.Express != before+1 {
		t.Errorf("lone knock: %d frames through the express socket, want %d: it should not wait for the ring", s.Express, before+1)
	}
	select {
	case r := <-ch:
		t.Errorf("a frame more than sent: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestCaptureNoExpress: without the express socket every frame comes
// through the ring.
func TestCaptureNoExpress(t *testing.T) {
	nstest.RequireRoot(t)
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, CaptureConfig{Interface: tb.srvIf, Ranges: sysRanges, NoExpress: true})
	if c.ex != nil {
		t.Fatal("an express socket with NoExpress")
	}
	ch := collect(c, sysRanges)
	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	sendSYN(t, tb.cli, "192.0.2.1", 40001)
	if got := knocks(t, until(t, ch, 40001)); len(got) != 2 {
		t.Fatalf("got %d knocks, want 2: %v", len(got), got)
	}
	if s := c.Stats(); s.Express != 0 || s.Read != 2 {
		t.Errorf("stats %+v: want 2 frames read, none through the express socket", s)
	}
}
