package capture

import "testing"

// TestSeenFrames: the record that pairs a frame returned by one socket
// with its copy on the other matches by length, checksum and capture
// times within copyTolerance, consumes one entry per copy, forgets
// entries whose copies can no longer come, and keeps the newest aheadMax.
func TestSeenFrames(t *testing.T) {
	const t0 = int64(1_700_000_000_000_000_000)
	f := func(ts int64, n int, sum uint64) seenFrame { return seenFrame{ts: ts, n: n, sum: sum} }

	var s seenFrames
	s.add(f(t0, 60, 1))
	for _, c := range []struct {
		name string
		f    seenFrame
	}{
		{"another checksum", f(t0, 60, 2)},
		{"another length", f(t0, 61, 1)},
		{"too late", f(t0+copyTolerance+1, 60, 1)},
	} {
		if s.match(c.f) {
			t.Errorf("%s: matched", c.name)
		}
	}
	// The too-late frame expired the entry: its copy would have come before.
	if s.n != 0 {
		t.Fatalf("%d entries after a frame more than copyTolerance later, want 0", s.n)
	}

	// A copy stamped a little earlier or later matches, once.
	s.add(f(t0, 60, 1))
	if !s.match(f(t0-1300, 60, 1)) {
		t.Error("a copy 1.3 us earlier did not match")
	}
	if s.match(f(t0-1300, 60, 1)) {
		t.Error("one entry matched two copies")
	}

	// Two identical frames: two entries, each copy takes one, in order.
	s.add(f(t0, 60, 7))
	s.add(f(t0+10, 60, 7))
	s.add(f(t0+20, 60, 8))
	if !s.match(f(t0+5, 60, 7)) || !s.match(f(t0+15, 60, 7)) || s.match(f(t0+16, 60, 7)) {
		t.Error("two identical frames: want two matches, then none")
	}
	if s.n != 1 || !s.match(f(t0+20, 60, 8)) {
		t.Errorf("the other frame's entry: %d entries left, want it to match", s.n)
	}

	// Full: the oldest entry goes.
	s.reset()
	for i := range aheadMax + 1 {
		s.add(f(t0+int64(i), 60, uint64(i)))
	}
	if s.n != aheadMax {
		t.Fatalf("%d entries, want at most %d", s.n, aheadMax)
	}
	if s.match(f(t0, 60, 0)) {
		t.Error("the oldest entry was kept past the record's size")
	}
	if !s.match(f(t0+aheadMax, 60, aheadMax)) {
		t.Error("the newest entry was lost")
	}
}
