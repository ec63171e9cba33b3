package client

import (
	"errors"
	"fmt"
	"time"
)

// ErrClock is wrapped by CheckClock's errors.
var ErrClock = errors.New("the system clock looks wrong")

// clockFloor is a time before which the clock is certainly wrong: tknock
// did not exist yet.
var clockFloor = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// clockSlack is how far a file's modification time may be ahead of the
// clock (a file on a network share, a clock stepped by NTP) before
// CheckClock complains.
const clockSlack = 2 * time.Minute

// CheckClock looks for signs that the system clock is wrong, since the
// client cannot ask the server for the time: a clock before 2024, or a
// clock behind the modification time of a file that this clock wrote
// (written, zero to skip that test), which means it was set back. A
// knock computed with a clock more than period*skew off opens nothing.
func CheckClock(now, written time.Time) error {
	if now.Before(clockFloor) {
		return fmt.Errorf("%w: it reads %s, before 2024; knock sequences depend on the time: set the clock (or enable NTP)",
			ErrClock, now.UTC().Format(time.RFC3339))
	}
	if !written.IsZero() && written.Sub(now) > clockSlack {
		return fmt.Errorf("%w: it reads %s, but a file it wrote is dated %s: the clock was set back; knock sequences depend on the time: set the clock (or enable NTP)",
			ErrClock, now.UTC().Format(time.RFC3339), written.UTC().Format(time.RFC3339))
	}
	return nil
}
