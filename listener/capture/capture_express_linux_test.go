package capture

import (
	"testing"
	"time"

	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
)

// TestCaptureExpressMerge sends a burst of knock frames much larger than
// the express socket holds while nobody reads: the first ones are on both
// sockets, all of them in the ring. ReadFrame must return every frame
// once, in the order sent, with nothing dropped; and a lone knock
// afterwards must come through the express socket, once.
func TestCaptureExpressMerge(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})
	if c.ex == nil || !c.ex.on.Load() {
		t.Fatal("no express socket, or it is off")
	}

	const burst = 2000
	frames := burstFrames(t, tb, burst)
	if c.ring.ready() {
		t.Error("the ring holds a block before any frame was sent")
	}
	sendRaw(t, tb.cli, tb.cliIf, frames...)
	time.Sleep(20 * time.Millisecond) // every ring block retired
	if !c.ring.ready() {
		t.Error("the ring holds no block with the burst sent")
	}

	ch := collect(c, sysRanges)
	readBurst(t, ch, burst)
	s := c.Stats()
	if s.Drops != 0 || s.Read != burst {
		t.Errorf("after the burst: %d frames read, %d dropped; want %d and 0", s.Read, s.Drops, burst)
	}
	if s.Express != 0 {
		t.Errorf("after the burst: %d frames came through the express socket; want none, the ring had them all when the reader came", s.Express)
	}

	before := s.Express
	waitExpressBack(t, c)
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
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})
	ch := collect(c, sysRanges)

	const burst = 2000
	sendRaw(t, tb.cli, tb.cliIf, burstFrames(t, tb, burst)...)
	readBurst(t, ch, burst)
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

	waitExpressBack(t, c)
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
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges, NoExpress: true})
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
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})

	const burst = 300
	sendRaw(t, tb.cli, tb.cliIf, burstFrames(t, tb, burst)...)
	time.Sleep(20 * time.Millisecond) // every ring block retired

	var fs [32]listener.Frame
	next, calls := 0, 0
	for next < burst {
		n, err := c.ReadFrames(fs[:])
		if err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", next, err)
		}
		calls++
		for _, f := range fs[:n] {
			if got := burstIndex(f.Data); got != next {
				t.Fatalf("frame %d of the burst where %d was due (batch of %d): % x", got, next, n, f.Data)
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

// burstFrames returns n UDP knock frames from the client to the server,
// frame i to port 50000+i%1000 with i in its payload.
func burstFrames(t *testing.T, tb *testbed, n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: udp, DstPort: 50000 + uint16(i%1000), DstMAC: tb.srvMAC,
			Payload: []byte{byte(i >> 8), byte(i)}}.Frame(t).Data
	}
	return frames
}

// burstIndex returns the number burstFrames put in a frame's payload, or
// -1 for a frame that is not one of them.
func burstIndex(d []byte) int {
	const at = 14 + 20 + 8 // Ethernet, IPv4, UDP: the payload
	if len(d) < at+2 {
		return -1
	}
	return int(d[at])<<8 | int(d[at+1])
}

// readBurst reads n results from ch and fails unless they are the frames
// of burstFrames, each once, in the order sent, their capture times in
// order.
func readBurst(t *testing.T, ch <-chan result, n int) {
	t.Helper()
	var prev time.Time
	for i := range n {
		var r result
		select {
		case r = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d of %d: none after 5s", i, n)
		}
		if !r.ok || burstIndex(r.frame.Data) < 0 {
			t.Fatalf("frame %d: not a knock of the burst: % x", i, r.frame.Data)
		}
		if got := burstIndex(r.frame.Data); got != i {
			t.Fatalf("frame %d: got frame %d of the burst (port %d), want them in the order sent", i, got, r.knock.Port)
		}
		if r.frame.Time.Before(prev) {
			t.Errorf("frame %d: captured at %v, before the frame before it (%v)", i, r.frame.Time, prev)
		}
		prev = r.frame.Time
	}
}

// waitExpressBack waits for the express socket to be back in the receive
// path after a burst: the burst's hold (busyHold) and the move back, which
// waits for a grace period, and the reader turning its filter on.
func waitExpressBack(t *testing.T, c *Conn) {
	t.Helper()
	for deadline := time.Now().Add(busyHold + 2*time.Second); !c.ex.all.Load() || c.ex.moving.Load() || !c.ex.on.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the express socket is not back in the receive path 2s after the burst")
		}
	}
}
