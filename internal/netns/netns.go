//go:build linux

// Package netns runs code and commands inside a named network namespace
// (as `ip netns add` makes it). It does not create namespaces; tests get
// throwaway ones from internal/nstest, the demo makes its own.
package netns

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace, as `ip netns add` makes it.
type NS struct {
	Name string // name under /run/netns
	Path string // /run/netns/Name
}

// Command returns a command that runs name inside the namespace
// (through `ip netns exec`).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(name string, args ...string) (string, error) {
	out, err := n.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in netns %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out), nil
}

// Do runs f on a fresh OS thread that has entered the namespace, and waits
// for it. The thread is never unlocked, so the Go runtime discards it when f
// returns instead of reusing a thread that sits in another namespace.
// Sockets that f opens stay in the namespace after f returns.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked on purpose: see the doc comment.
		fd, err := unix.Open(n.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
