//go:build !linux

package daemon

import (
	"io"
	"os"
	"syscall"
)

// lockInstance does nothing off Linux, where the daemon cannot run
// (nftables is Linux only).
func lockInstance(instance string) (io.Closer, error) { return io.NopCloser(nil), nil }

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
