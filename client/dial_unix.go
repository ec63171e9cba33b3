//go:build unix

package client

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
)

// knockTCP sends one SYN without waiting: a non-blocking connect on a fresh
// socket, then close. Closing a socket in SYN-SENT discards it without
// sending anything more, so the SYN is not retransmitted.
func knockTCP(_ context.Context, dst netip.AddrPort) error {
	family, sa, err := sockaddr(dst)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer syscall.Close(fd)
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("setnonblock", err)
	}
	switch err := syscall.Connect(fd, sa); {
	case err == nil, errors.Is(err, syscall.EINPROGRESS), errors.Is(err, syscall.EINTR),
		errors.Is(err, syscall.ECONNREFUSED):
		// The SYN is on its way (or a local RST already answered it).
		return nil
	default:
		return os.NewSyscallError("connect", err)
	}
}

func sockaddr(dst netip.AddrPort) (int, syscall.Sockaddr, error) {
	a := dst.Addr()
	if a.Is4() || a.Is4In6() {
		return syscall.AF_INET, &syscall.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}, nil
	}
	zone, err := zoneIndex(a.Zone())
	if err != nil {
		return 0, nil, err
	}
	return syscall.AF_INET6, &syscall.SockaddrInet6{Port: int(dst.Port()), ZoneId: zone, Addr: a.As16()}, nil
}
