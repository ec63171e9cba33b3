//go:build !unix

package listener

import "time"

// trkCPUTime is not measured on this OS.
func trkCPUTime() time.Duration { return 0 }
