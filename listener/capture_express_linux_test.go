package listener

import (
	"testing"
	"time"

	"github.com/tknock/tknock/internal/nstest"
)

// TestCaptureExpressMerge sends a burst of knock frames much larger than
// the express socket holds while nobody reads: the first ones are on both
// sockets, all of them in the ring. ReadFrame must return every frame
// once, in the order sent, with nothing dropped; and a lone knock
// afterwards must come through the express socket, once.
func TestCaptureExpressMerge(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, CaptureConfig{Interface: tb.srvIf, Ranges: sysRanges})
	if c.ex == nil || !c.ex.on {
		t.Fatal("no express socket, or it is off")
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
	if s.Express != 0 {
		t.Errorf("after the burst: %d frames came through the express socket; want none, the ring had them all when the reader came", s.Express)
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

// TestCaptureExpressLive reads while frames come: a burst, which the
// reader must return once each, in order, none dropped, whichever socket
// it reads them from first, and which must take the express socket out
// of the receive path; then knocks a few milliseconds apart, light
// traffic, which must come once each (not a second time when the copy
// comes out of the ring), most through the express socket (a knock that
// arrives as the kernel hands over a ring block holding its copy comes
// through the ring, as early).
func TestCaptureExpressLive(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, CaptureConfig{Interface: tb.srvIf, Ranges: sysRanges})
	ch := collect(c, sysRanges)

	const burst = 2000
	frames := make([][]byte, burst)
	for i := range frames {
		frames[i] = pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: udp, dport: 50000 + uint16(i%1000), dstMAC: tb.srvMAC,
			payload: []byte{byte(i >> 8), byte(i)}}.frame(t).Data
	}
	sendRaw(t, tb.cli, tb.cliIf, frames...)
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
			t.Fatalf("frame %d: got frame %d of the burst, want them in the order sent", i, got)
		}
	}
	s := c.Stats()
	if s.Drops != 0 || s.Read != burst {
		t.Errorf("after the burst: %d frames read, %d dropped; want %d and 0", s.Read, s.Drops, burst)
	}

	// The burst turned the express socket off and took it out of the
	// receive path, so that the kernel spends nothing on it per frame.
	for deadline := time.Now().Add(2 * time.Second); c.ex.parks.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the express socket stayed in the receive path during the burst")
		}
	}

	time.Sleep(30 * time.Millisecond) // the burst is over for the reader too
	const lone = 20
	before := s.Express
	for i := range lone {
		port := uint16(50900 + i)
		sendUDP(t, tb.cli, "192.0.2.1", port)
		select {
		case r := <-ch:
			if !r.ok || r.knock.Port != port {
				t.Fatalf("knock %d: got %+v, want a knock to %d", i, r, port)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("knock %d: not read after 5s", i)
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case r := <-ch:
		t.Errorf("a frame more than sent: %+v", r)
	case <-time.After(50 * time.Millisecond): // several block timeouts: every copy is out of the ring
	}
	s = c.Stats()
	if s.Read != burst+lone {
		t.Errorf("%d frames read in all, want %d", s.Read, burst+lone)
	}
	if ex := s.Express - before; ex < lone/2 {
		t.Errorf("light traffic: %d of %d knocks through the express socket; want most", ex, lone)
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

// TestCaptureReadFrames reads a burst in batches: every frame once, in
// order, several per call, each batch's frames intact together (each has
// a buffer of its own), and a call blocks until a frame comes.
func TestCaptureReadFrames(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, CaptureConfig{Interface: tb.srvIf, Ranges: sysRanges})

	const burst = 300
	frames := make([][]byte, burst)
	for i := range frames {
		frames[i] = pkt{src: "192.0.2.2", dst: "192.0.2.1", proto: udp, dport: 50000 + uint16(i), dstMAC: tb.srvMAC,
			payload: []byte{byte(i >> 8), byte(i)}}.frame(t).Data
	}
	sendRaw(t, tb.cli, tb.cliIf, frames...)
	time.Sleep(20 * time.Millisecond) // every ring block retired

	var fs [32]Frame
	next, calls := 0, 0
	for next < burst {
		n, err := c.ReadFrames(fs[:])
		if err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", next, err)
		}
		calls++
		for _, f := range fs[:n] {
			const at = 14 + 20 + 8 // Ethernet, IPv4, UDP: the payload
			if len(f.Data) < at+2 {
				t.Fatalf("frame %d: % x", next, f.Data)
			}
			if got := int(f.Data[at])<<8 | int(f.Data[at+1]); got != next {
				t.Fatalf("frame %d of the burst where %d was due (batch of %d)", got, next, n)
			}
			next++
		}
	}
	if calls > burst/2 {
		t.Errorf("%d frames in %d calls: want batches", burst, calls)
	}

	done := make(chan int, 1)
	go func() {
		n, err := c.ReadFrames(fs[:])
		if err != nil {
			t.Errorf("ReadFrames: %v", err)
		}
		done <- n
	}()
	select {
	case n := <-done:
		t.Fatalf("ReadFrames returned %d frames with none sent", n)
	case <-time.After(50 * time.Millisecond):
	}
	sendUDP(t, tb.cli, "192.0.2.1", 50999)
	select {
	case n := <-done:
		if n != 1 {
			t.Errorf("lone knock: %d frames, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lone knock: not read after 5s")
	}
}
