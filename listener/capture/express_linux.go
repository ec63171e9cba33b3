package capture

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The express lane. A TPACKET_V3 ring wakes its reader only when the
// kernel retires a block, which for a lone knock means when the block
// timer fires: milliseconds late, every time. A knock daemon is idle most
// of the time and then wants each knock at once, and under a flood wants
// the ring's batching and the least work in the kernel's receive path. So
// the capture has a second AF_PACKET socket on the same interface, a
// plain one with a small receive buffer, and the same filter while the
// traffic is light: the kernel gives every knock frame to both sockets,
// the ring first, and the copy on the express socket wakes the reader at
// once.
//
// The ring is the record: it holds every frame in order. An express frame
// is returned ahead of the ring only when the ring holds nothing older
// that is not returned yet (the ring's PACKET_STATISTICS count against
// the frames taken), and it is remembered (ahead) until its copy comes out
// of the ring, which is then skipped. A frame the ring returns while the
// express socket is on is remembered too (behind), and its copy on the
// express socket, should one come, is dropped. Two copies of a frame have
// the same bytes, and capture times a few microseconds apart at most (the
// kernel stamps a received frame once for every socket, but a frame sent
// on this host, over a veth say, carries its sending time instead, and
// each socket takes the time as it gets the frame).

// Under a burst the reader gives the express socket a filter that takes
// nothing and drops what it holds, and then takes it out of the
// interface's receive path, so that the kernel spends nothing on it per
// frame (a socket with a filter that takes nothing still costs about
// 80 ns of the receive path per frame, measured): every frame comes
// through the ring alone. A packet socket cannot be unbound; it is bound
// instead to one ethertype, a local experimental one, which the
// interface's other frames pass by with one comparison. Changing what a
// packet socket is bound to waits for an RCU grace period
// (synchronize_net, milliseconds), so it runs on a goroutine of its own
// while the reader goes on. When the burst is over, the express socket is
// bound to every frame again and then gets the knock filter. It is then
// the interface's newest socket, which the kernel hands a frame first,
// before the ring: the ring's count that the reader compares may lack the
// copy of the frame being checked, for the moment between the two
// deliveries (one softirq, well under the time the reader takes to
// wake), which would let one older frame still held in a ring block be
// returned after it.

const (
	// expressQueue is how many frames one read of the express socket
	// takes at most.
	expressQueue = 16

	// expressRcvbuf is the express socket's receive buffer (the kernel
	// doubles it, and raises it to its minimum of about 4.5 KiB): a
	// handful of frames. What does not fit is in the ring anyway.
	expressRcvbuf = 4 << 10

	// busyFrames frames within busyWindow nanoseconds of capture time make
	// the traffic a burst; the express socket is off until busyHold
	// nanoseconds after the latest burst.
	busyFrames = 32
	busyWindow = 1e6
	busyHold   = 20e6

	// aheadMax is how many frames of one socket are remembered until
	// their copies come from the other: more than a block timeout of
	// frames below the burst rate.
	aheadMax = 512
)

// expressFrame is one frame read from the express socket.
type expressFrame struct {
	data    [SnapLen]byte
	n       int
	ts      int64 // capture time, Unix nanoseconds
	ifindex int
	pkttype uint8
	proto   uint16 // sll_protocol, the frame's EtherType
}

// seenFrame identifies a frame that one socket returned and whose copy on
// the other socket is to be skipped.
type seenFrame struct {
	ts  int64
	n   int
	sum uint64
}

// copyTolerance is how far apart, in nanoseconds, the capture times of a
// frame's two copies may be.
const copyTolerance = busyWindow

// seenFrames is a FIFO of frames one socket returned, oldest first.
type seenFrames struct {
	q       [aheadMax]seenFrame // q[head:head+n] modulo the length
	head, n int
}

// add records f. When the record is full the oldest entry goes: should
// its copy still come, it is returned a second time, which the tracker
// takes as a repeated knock.
func (s *seenFrames) add(f seenFrame) {
	if s.n == len(s.q) {
		s.head = (s.head + 1) % len(s.q)
		s.n--
	}
	s.q[(s.head+s.n)%len(s.q)] = f
	s.n++
}

// match reports whether f is the copy of a recorded frame, and removes
// that entry (the oldest that matches). Entries more than copyTolerance
// older than f go too: their copies would have come before f.
func (s *seenFrames) match(f seenFrame) bool {
	found := false
	for i := 0; i < s.n; i++ {
		a := &s.q[(s.head+i)%len(s.q)]
		if a.n != f.n || a.sum != f.sum || a.ts < f.ts-copyTolerance || a.ts > f.ts+copyTolerance {
			continue
		}
		for j := i; j > 0; j-- { // remove it, keeping the order of the rest
			s.q[(s.head+j)%len(s.q)] = s.q[(s.head+j-1)%len(s.q)]
		}
		s.head = (s.head + 1) % len(s.q)
		s.n--
		found = true
		break
	}
	for s.n > 0 && s.q[s.head].ts < f.ts-copyTolerance {
		s.head = (s.head + 1) % len(s.q)
		s.n--
	}
	return found
}

func (s *seenFrames) reset() { s.head, s.n = 0, 0 }

// express is the capture's express socket, the frames read from it that
// ReadFrame has not returned yet (q[head:head+n] modulo the length), and
// the frames it returned ahead of the ring. Used under Conn.mu.
type express struct {
	fd      int
	ifindex int
	on      atomic.Bool // the socket has the knock filter; written under mu, by the reader only; atomic so tests can watch it

	// all reports whether the socket is bound to every frame of the
	// interface (else to parkProto); moving is set while a goroutine
	// changes that.
	all, moving atomic.Bool
	parks       atomic.Uint64 // times the socket was taken out of the receive path

	mu   sync.Mutex  // guards filt, and the filter of the socket
	filt knockFilter // the knock filter

	q       [expressQueue]expressFrame
	head, n int
	more    bool // the last fill stopped with the queue full: the socket may hold more

	ahead  seenFrames // returned from the express socket, copies not out of the ring yet
	behind seenFrames // returned from the ring while the socket was on, copies not read from it yet
	seed   maphash.Seed

	msg  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrLinklayer
	ctrl [64]byte
}

// dropAll is the filter of the express socket while it is off.
var dropAll = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}

// openExpress opens the express socket, bound to ifindex with a filter
// that takes nothing. The ring's socket must be bound after it: the
// kernel hands a frame to the sockets of an interface newest first, so
// the ring has a frame's copy before the express socket does.
func openExpress(typ, ifindex int) (*express, error) {
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("express socket: %w", err)
	}
	e := &express{fd: fd, ifindex: ifindex, seed: maphash.MakeSeed()}
	if err := e.setup(ifindex); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("express socket: %w", err)
	}
	return e, nil
}

func (e *express) setup(ifindex int) error {
	if err := attach(e.fd, dropAll); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(e.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", err)
	}
	if err := unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, expressRcvbuf); err != nil {
		return fmt.Errorf("set SO_RCVBUF: %w", err)
	}
	// The time the kernel received the frame: the ring's copy carries the
	// same (the kernel stamps a frame once, on receipt, for every socket).
	if err := unix.SetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("set SO_TIMESTAMPNS: %w", err)
	}
	if err := e.bind(true); err != nil {
		return err
	}
	e.iov.SetLen(SnapLen)
	e.msg.Name = (*byte)(unsafe.Pointer(&e.name))
	e.msg.Iov = &e.iov
	e.msg.SetIovlen(1)
	e.msg.Control = &e.ctrl[0]
	return nil
}

// parkProto is the ethertype the express socket is bound to while it is
// out of the receive path: ETH_P_802_EX1, for local experiments.
const parkProto = 0x88b5

// bind binds the socket to the interface: to every frame, or to
// parkProto.
func (e *express) bind(all bool) error {
	proto := uint16(unix.ETH_P_ALL)
	if !all {
		proto = parkProto
	}
	if err := unix.Bind(e.fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: e.ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	e.all.Store(all)
	return nil
}

// enable gives the socket the knock filter.
func (e *express) enable() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.filt.attach(e.fd); err != nil {
		return fmt.Errorf("express socket: %w", err)
	}
	e.on.Store(true)
	return nil
}

// setProg replaces the knock filter (a reload); the socket gets it at
// once if it is on. It may be called from any goroutine while the capture
// is open.
func (e *express) setProg(kf knockFilter) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.filt = kf
	if e.on.Load() {
		if err := kf.attach(e.fd); err != nil {
			return fmt.Errorf("express socket: %w", err)
		}
	}
	return nil
}

// disable gives the socket the filter that takes nothing and drops the
// frames it holds: their copies are in the ring.
func (e *express) disable() error {
	e.mu.Lock()
	err := attach(e.fd, dropAll)
	if err == nil {
		e.on.Store(false)
	}
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("express socket: %w", err)
	}
	e.head, e.n, e.more = 0, 0, false
	e.behind.reset()
	var b [1]byte
	for {
		// A raw recvfrom: unix.Recvfrom allocates the sender's address.
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(e.fd), uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0, unix.EINTR:
		case unix.EAGAIN:
			return nil
		default:
			return fmt.Errorf("express socket: recvfrom: %w", errno)
		}
	}
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
		f.proto = htons(e.name.Protocol) // network order to host order: the same swap
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

// seen returns what identifies the frame data captured at ts.
func (e *express) seen(data []byte, ts int64) seenFrame {
	return seenFrame{ts: ts, n: len(data), sum: maphash.Bytes(e.seed, data)}
}
