package capture

// burst tells light traffic from a burst, for the express socket (see
// express_linux.go): busyFrames frames within busyWindow of capture time,
// or as many knocks dropped by the prefilter per busyWindow on average
// between two looks at its counter, make a burst, and the traffic is busy
// until busyHold after the reader met the latest one (by the wall clock:
// a reader that lags behind a flood still is in it). Owned by the reader
// (under Conn.mu); the zero value is quiet traffic.
type burst struct {
	until int64 // Unix nanoseconds: until then the traffic is a burst

	winStart  int64 // capture time of the first frame of the current window
	winFrames int   // frames in it

	pfDrops    uint64 // the prefilter's drop count at pfAt
	pfAt       int64  // Unix nanoseconds of the latest look at it
	pfDropping bool   // the latest look found drops
}

// frame counts a frame captured at ts (Unix nanoseconds) when the wall
// clock reads now, and reports whether a burst starts with it: once per
// window, not at every frame of a flood.
func (b *burst) frame(ts, now int64) bool {
	if ts-b.winStart > busyWindow || ts < b.winStart {
		b.winStart, b.winFrames = ts, 0
	}
	b.winFrames++
	if b.winFrames != busyFrames {
		return false
	}
	b.until = now + busyHold
	return true
}

// lookDue reports whether it is time to look at the prefilter's drop
// counter again: busyWindow after the latest look.
func (b *burst) lookDue(now int64) bool { return now-b.pfAt >= busyWindow }

// drops takes the prefilter's drop count d, read at now, and reports
// whether the drops since the latest look make a burst.
func (b *burst) drops(d uint64, now int64) bool {
	el := now - b.pfAt
	n := d - b.pfDrops
	b.pfDrops, b.pfAt, b.pfDropping = d, now, n > 0
	if n < busyFrames || int64(n)*busyWindow < busyFrames*el {
		return false
	}
	b.until = now + busyHold
	return true
}

// left returns how long the current burst still lasts at now, in
// nanoseconds; 0 or less when the traffic is not busy.
func (b *burst) left(now int64) int64 { return b.until - now }
