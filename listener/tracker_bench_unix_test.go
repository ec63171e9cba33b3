//go:build unix

package listener

import (
	"syscall"
	"time"
)

// trkCPUTime returns the CPU time (user and system) the process has used,
// which, unlike the wall clock, a busy machine does not inflate.
func trkCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
