package capture

import "testing"

// TestBurstFrames: busyFrames frames within busyWindow start a burst, once
// per window; frames spread wider do not.
func TestBurstFrames(t *testing.T) {
	var b burst
	const now = int64(1e18)
	for i := range busyFrames - 1 {
		if b.frame(now+int64(i), now) {
			t.Fatalf("frame %d of one window started a burst, want frame %d to", i+1, busyFrames)
		}
	}
	if !b.frame(now+busyFrames, now) {
		t.Fatalf("frame %d within %d ns started no burst", busyFrames, int64(busyWindow))
	}
	if got := b.left(now); got != busyHold {
		t.Errorf("left = %d ns at the start of a burst, want busyHold %d", got, int64(busyHold))
	}
	if b.frame(now+busyFrames+1, now) {
		t.Error("the next frame of the same window started a burst again")
	}
	var slow burst
	for i := range 3 * busyFrames {
		if slow.frame(now+int64(i)*busyWindow/busyFrames*2, now) {
			t.Fatalf("frame %d at half the burst rate started a burst", i+1)
		}
	}
	if slow.left(now) > 0 {
		t.Error("traffic at half the burst rate is busy")
	}
}

// TestBurstDrops: the prefilter's drops make a burst at busyFrames per
// busyWindow on average since the latest look, not fewer; looks come at
// most every busyWindow.
func TestBurstDrops(t *testing.T) {
	var b burst
	now := int64(1e18)
	if !b.lookDue(now) {
		t.Fatal("the first look is not due")
	}
	b.drops(0, now)
	if b.lookDue(now + busyWindow - 1) {
		t.Error("a look is due before busyWindow has passed")
	}
	now += 10 * busyWindow
	if b.drops(10*busyFrames-1, now) {
		t.Error("fewer drops than busyFrames per busyWindow made a burst")
	}
	if !b.pfDropping {
		t.Error("drops since the latest look, but pfDropping is false")
	}
	now += 10 * busyWindow
	if !b.drops(10*busyFrames-1+10*busyFrames, now) {
		t.Error("busyFrames drops per busyWindow made no burst")
	}
	if b.left(now) != busyHold {
		t.Errorf("left = %d after a burst of drops, want %d", b.left(now), int64(busyHold))
	}
	now += busyWindow
	if b.drops(20*busyFrames-1, now) || b.pfDropping {
		t.Error("no new drops, yet a burst or pfDropping")
	}
}
