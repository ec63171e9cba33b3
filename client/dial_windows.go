//go:build windows

package client

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// fionbio is the Winsock ioctl that makes a socket non-blocking.
const fionbio = 0x8004667e

// knockTCP sends one SYN without waiting: a non-blocking connect on a fresh
// socket, then closesocket. If the socket cannot be made non-blocking it
// falls back to the portable abandoned dial.
func knockTCP(ctx context.Context, dst netip.AddrPort) error {
	a := dst.Addr()
	var family int
	var sa windows.Sockaddr
	if a.Is4() || a.Is4In6() {
		family, sa = windows.AF_INET, &windows.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}
	} else {
		zone, err := zoneIndex(a.Zone())
		if err != nil {
			return err
		}
		family, sa = windows.AF_INET6, &windows.SockaddrInet6{Port: int(dst.Port()), ZoneId: zone, Addr: a.As16()}
	}
	s, err := windows.Socket(family, windows.SOCK_STREAM, windows.IPPROTO_TCP)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer windows.Closesocket(s)
	on, ret := uint32(1), uint32(0)
	if err := windows.WSAIoctl(s, fionbio, (*byte)(unsafe.Pointer(&on)), 4, nil, 0, &ret, nil, 0); err != nil {
		return knockAbandon(ctx, dst)
	}
	switch err := windows.Connect(s, sa); {
	case err == nil, errors.Is(err, windows.WSAEWOULDBLOCK), errors.Is(err, windows.WSAEINPROGRESS),
		errors.Is(err, windows.WSAECONNREFUSED):
		return nil
	default:
		return os.NewSyscallError("connect", err)
	}
}
