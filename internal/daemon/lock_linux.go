package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockInstance makes sure that this is the only daemon of instance in
// this network namespace: it binds an abstract unix socket named after the
// instance. Abstract sockets belong to a network namespace, as the
// nftables table does, and the kernel frees the name when the process
// ends, however it ends: no stale lock file. When the name is taken, the
// error names the daemon that holds it (its pid, from the socket's peer
// credentials). Close releases it.
func lockInstance(instance string) (io.Closer, error) {
	name := "@tknockd " + instance
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("lock %s: %w", instance, err)
	}
	holder := "another tknockd"
	if pid := lockHolder(name); pid > 0 {
		holder = fmt.Sprintf("another tknockd (pid %d)", pid)
	}
	return nil, fmt.Errorf("%s already runs %s in this network namespace: stop it first (systemctl stop tknockd), "+
		"or give this configuration another table ([firewall] table)", holder, instance)
}

// lockHolder returns the pid of the process listening on the abstract
// socket name, or 0.
func lockHolder(name string) int {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
