package listener

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The express lane. A TPACKET_V3 ring wakes its reader only when the
// kernel retires a block, which for a lone knock means when the block
// timer fires: up to a millisecond late, every time. A knock daemon is
// idle most of the time and then wants each knock at once, and under a
// flood wants the ring's batching. So the capture has a second AF_PACKET
// socket, a plain one with a small receive buffer, and puts the two in a
// fanout group (PACKET_FANOUT_CBPF with a program that always picks the
// express socket, and PACKET_FANOUT_FLAG_ROLLOVER): the kernel gives each
// knock frame to exactly one of them, the express socket while its buffer
// has room, else the ring. Every frame on the express socket wakes the
// reader at once.
//
// The reader keeps the express socket drained while the traffic is light.
// Under a burst it stops waiting on it and reads it only when a ring block
// comes in or a short timer fires; its buffer fills up, and the kernel
// sends everything else to the ring. Frames of the two sockets are merged
// by their capture times (both are the time the kernel received the
// frame, since the express socket asks for timestamps), so the reader sees
// them in order, to within a block.

const (
	// expressQueue is how many frames one read of the express socket
	// takes at most.
	expressQueue = 16

	// expressRcvbuf is the express socket's receive buffer (the kernel
	// doubles it, and raises it to its minimum of about 4.5 KiB): a
	// handful of frames. While it is more than a quarter free, knock
	// frames go to it; beyond, to the ring. Small on purpose: the express
	// socket is for the first knocks of quiet times, and every frame it
	// takes under a flood costs a system call that the ring does not.
	expressRcvbuf = 4 << 10

	// busyFrames frames within busyWindow nanoseconds of capture time make
	// the traffic a burst; the reader then leaves the express socket to
	// fill up for busyHold nanoseconds after the latest burst.
	busyFrames = 32
	busyWindow = 1e6
	busyHold   = 20e6
)

// expressFrame is one frame read from the express socket.
type expressFrame struct {
	data    [SnapLen]byte
	n       int
	ts      int64 // capture time, Unix nanoseconds
	ifindex int
	pkttype uint8
}

// express is the capture's express socket and the frames read from it
// that ReadFrame has not returned yet, q[head:head+n] modulo the length.
// Used under Capture.mu.
type express struct {
	fd      int
	q       [expressQueue]expressFrame
	head, n int
	safe    int  // frames at the head known to be older than any frame the ring holds back
	more    bool // the last fill stopped with the queue full: the socket may hold more

	msg  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrLinklayer
	ctrl [64]byte
}

// joinFanout puts the ring's socket fd and a new express socket (with the
// filter prog, bound like the ring to ifindex) in a fanout group. The
// order avoids both duplicates and losses: the ring joins alone first
// (the group's program is not set yet, so everything goes to member 0,
// the ring); the express socket is bound with a filter that takes
// nothing, joins, gets the real filter, and only then does the program
// send frames to it.
func joinFanout(fd int, typ int, prog []bpf.RawInstruction, ifindex int) (*express, error) {
	const mode = unix.PACKET_FANOUT_CBPF | unix.PACKET_FANOUT_FLAG_ROLLOVER
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16); err != nil {
		return nil, fmt.Errorf("join fanout group: %w", err)
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return nil, fmt.Errorf("read fanout group: %w", err)
	}
	id := v & 0xffff

	efd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("express socket: %w", err)
	}
	e := &express{fd: efd}
	if err := e.setup(prog, ifindex, mode<<16|id); err != nil {
		unix.Close(efd)
		return nil, err
	}
	// Member 0 is the ring, member 1 the express socket.
	pick := []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 1}}
	fp := unix.SockFprog{Len: 1, Filter: (*unix.SockFilter)(unsafe.Pointer(&pick[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fp); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("set fanout program: %w", err)
	}
	return e, nil
}

func (e *express) setup(prog []bpf.RawInstruction, ifindex, fanout int) error {
	none := []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := attach(e.fd, none); err != nil {
		return fmt.Errorf("express socket: %w", err)
	}
	if err := unix.SetsockoptInt(e.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("express socket: set PACKET_IGNORE_OUTGOING: %w", err)
	}
	if err := unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, expressRcvbuf); err != nil {
		return fmt.Errorf("express socket: set SO_RCVBUF: %w", err)
	}
	// The time the kernel received the frame, the same clock as the ring's.
	if err := unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("express socket: set SO_TIMESTAMPNS: %w", err)
	}
	if err := unix.Bind(e.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fmt.Errorf("express socket: bind: %w", err)
	}
	if err := unix.SetsockoptInt(e.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, fanout); err != nil {
		return fmt.Errorf("express socket: join fanout group: %w", err)
	}
	if err := attach(e.fd, prog); err != nil {
		return fmt.Errorf("express socket: %w", err)
	}
	e.iov.SetLen(SnapLen)
	e.msg.Name = (*byte)(unsafe.Pointer(&e.name))
	e.msg.Iov = &e.iov
	e.msg.SetIovlen(1)
	e.msg.Control = &e.ctrl[0]
	return nil
}

// peek returns the oldest frame read and not returned yet, or nil.
func (e *express) peek() *expressFrame {
	if e.n == 0 {
		return nil
	}
	return &e.q[e.head]
}

// pop drops the frame peek returned.
func (e *express) pop() {
	e.head = (e.head + 1) % expressQueue
	e.n--
	if e.safe > 0 {
		e.safe--
	}
}

// fill reads the frames waiting on the socket, without blocking, until
// the queue is full. It returns how many it read.
func (e *express) fill() (int, error) {
	read := 0
	e.more = false
	for {
		if e.n == expressQueue {
			e.more = true
			return read, nil
		}
		f := &e.q[(e.head+e.n)%expressQueue]
		e.iov.Base = &f.data[0]
		e.msg.Namelen = unix.SizeofSockaddrLinklayer
		e.msg.SetControllen(len(e.ctrl))
		e.msg.Flags = 0
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(e.fd), uintptr(unsafe.Pointer(&e.msg)), unix.MSG_DONTWAIT)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return read, nil
		default:
			return read, fmt.Errorf("express socket: recvmsg: %w", errno)
		}
		f.n = int(n)
		f.ts = e.timestamp()
		f.ifindex = int(e.name.Ifindex)
		f.pkttype = e.name.Pkttype
		e.n++
		read++
	}
}

// timestamp returns the receive time in the control message of the last
// recvmsg, in Unix nanoseconds; 0 without one (the kernel always sends it
// once SO_TIMESTAMPNS is set).
func (e *express) timestamp() int64 {
	ctrl := e.ctrl[:e.msg.Controllen]
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(ctrl) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(ctrl) {
			return 0
		}
		ctrl = ctrl[next:]
	}
	return 0
}
