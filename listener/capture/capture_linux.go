package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/internal/ranges"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Conn reads knock frames from an AF_PACKET socket with a
// memory-mapped TPACKET_V3 receive ring, in pure Go, and from an express
// socket beside it that delivers copies of the frames of light traffic at
// once (express_linux.go); ReadFrame returns each frame once, in capture
// order, from whichever has it first. A kernel filter attached before a
// socket is bound lets only knock frames reach it: the classic BPF program
// of Filter, or the eBPF Prefilter, which also drops the knocks that rule 1
// makes useless (and whose drops count as a burst, see prefilterBurst).
// Outgoing frames are left out by the kernel (PACKET_IGNORE_OUTGOING) and
// skipped again here, as are frames to other hosts that a promiscuous
// interface picks up.
//
// The socket taps the receive path before netfilter, so it sees knocks that
// nftables drops. It lives in the network namespace of the thread that
// called Listen.
//
// ReadFrame and ReadFrames must be called from one goroutine at a time;
// Close, Stats and SetRanges may be called from any goroutine.
type Conn struct {
	name string
	link listener.LinkType
	pf   *Prefilter // the kernel filter, or nil for the classic one

	closed atomic.Bool

	fdMu sync.RWMutex // guards fd and efd: read-held while they are used outside ReadFrame; Close write-holds it to close them
	fd   int          // the AF_PACKET socket
	efd  int          // eventfd that Close signals to wake a pending ReadFrame

	mu        sync.Mutex // held by ReadFrame, and by Close to close fd and unmap; guards the fields below
	ring      ring
	ringTaken uint64         // frames taken from the ring
	pending   error          // an error met after a batch's first frame or at a burst, for the next read to return
	ex        *express       // the express socket (express_linux.go); nil with NoExpress
	tov       int            // the ring's block timeout, in milliseconds
	burst     burst          // light traffic or a burst (burst_linux.go)
	buf       []byte         // the frame ReadFrame returned last
	bufs      []byte         // the frames ReadFrames returned last, SnapLen bytes each
	pfds      [3]unix.PollFd // fd, efd and the express socket, for poll(2)

	counts counters    // what ReadFrame did, for Stats
	kernel kernelStats // the ring's kernel counters, for Stats and ringHeld
}

// counters are the Conn's own counters: the reader adds, Stats loads.
type counters struct {
	read, outgoing, otherHost, express, notIP atomic.Uint64
}

// kernelStats sums the ring socket's PACKET_STATISTICS, which the kernel
// resets at each read. Safe for concurrent use.
type kernelStats struct {
	mu       sync.Mutex // guards the fields below
	sum      Stats      // Packets, Drops and Freezes so far
	ringRecv uint64     // frames the kernel put in the ring so far
	st3      unix.TpacketStatsV3
}

// poll adds the counters of fd since the previous poll.
func (k *kernelStats) poll(fd int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if packetStats(fd, unsafe.Pointer(&k.st3), unsafe.Sizeof(k.st3)) == nil {
		st := &k.st3
		k.sum.Packets += uint64(st.Packets)
		k.sum.Drops += uint64(st.Drops)
		k.sum.Freezes += uint64(st.Freeze_q_cnt)
		k.ringRecv += uint64(st.Packets - st.Drops)
	}
}

// get returns the sums and the frames put in the ring so far.
func (k *kernelStats) get() (Stats, uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sum, k.ringRecv
}

var _ listener.BatchSource = (*Conn)(nil)

// Listen opens a capture. It needs CAP_NET_RAW. The socket is created in
// the network namespace of the calling thread.
func Listen(cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults(os.Getpagesize())
	if err != nil {
		return nil, err
	}
	t, err := ranges.New(cfg.Ranges)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}

	name, ifindex, typ, link := "any", 0, unix.SOCK_DGRAM, listener.LinkIP
	if cfg.Interface != "" && cfg.Interface != "any" {
		name = cfg.Interface
		var ethernet bool
		ifindex, ethernet, err = lookupInterface(name)
		if err != nil {
			return nil, err
		}
		if ethernet {
			typ, link = unix.SOCK_RAW, listener.LinkEthernet
		}
	}
	kf := knockFilter{pf: cfg.Prefilter, link: link}
	if kf.pf == nil {
		if kf.classic, err = filter(t, link); err != nil {
			return nil, fmt.Errorf("capture %s: %w", name, err)
		}
	} else if err := kf.pf.SetRanges(cfg.Ranges); err != nil {
		return nil, fmt.Errorf("capture %s: %w", name, err)
	}

	// Protocol 0: the socket receives nothing until bind, and by then the
	// filter and the ring are in place.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("capture %s: socket: %w", name, err)
	}
	c := &Conn{name: name, link: link, pf: cfg.Prefilter, fd: fd, efd: -1, buf: make([]byte, SnapLen), tov: int(cfg.BlockTimeout.Milliseconds())}
	if !cfg.NoExpress {
		// Bound before the ring, which then has every frame first.
		if c.ex, err = openExpress(typ, ifindex); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("capture %s: %w", name, err)
		}
		c.ex.filt = kf
		c.ex.filt.express = true
	}
	err = c.setup(cfg, kf, ifindex)
	if err == nil && c.ex != nil {
		err = c.ex.enable()
	}
	if err != nil {
		unix.Close(fd)
		if c.efd >= 0 {
			unix.Close(c.efd)
		}
		if c.ex != nil {
			unix.Close(c.ex.fd)
		}
		if c.ring.mem != nil {
			unix.Munmap(c.ring.mem)
		}
		return nil, fmt.Errorf("capture %s: %w", name, err)
	}
	c.pfds = [3]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}, {Fd: int32(c.efd), Events: unix.POLLIN}, {Fd: -1}}
	if c.ex != nil {
		c.pfds[2] = unix.PollFd{Fd: int32(c.ex.fd), Events: unix.POLLIN}
	}
	return c, nil
}

func (c *Conn) setup(cfg Config, kf knockFilter, ifindex int) error {
	fd := c.fd
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	c.efd = efd
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("set TPACKET_V3: %w", err)
	}
	if err := kf.attach(fd); err != nil {
		return err
	}
	// Linux >= 4.20. Without it, outgoing frames are skipped in ReadFrame.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING: %w", err)
	}
	const frameSize = 2048 // TPACKET_V3 frames are variable; this only has to divide the block
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.NumBlocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(cfg.BlockSize / frameSize * cfg.NumBlocks),
		Retire_blk_tov: uint32(cfg.BlockTimeout.Milliseconds()),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("set PACKET_RX_RING (%d blocks of %d bytes): %w", cfg.NumBlocks, cfg.BlockSize, err)
	}
	mem, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.NumBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap ring: %w", err)
	}
	c.ring = ring{mem: mem, blockSize: cfg.BlockSize, numBlocks: cfg.NumBlocks}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// lookupInterface returns the index of the interface name and whether its
// frames carry an Ethernet header (Ethernet and loopback devices).
func lookupInterface(name string) (index int, ethernet bool, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false, fmt.Errorf("capture %s: socket: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, false, fmt.Errorf("capture %s: interface name: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, false, fmt.Errorf("capture %s: no such interface: %w", name, err)
	}
	index = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, false, fmt.Errorf("capture %s: link type: %w", name, err)
	}
	switch ifr.Uint16() { // ifr_hwaddr.sa_family: the ARPHRD_ type
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		ethernet = true
	}
	return index, ethernet, nil
}

func attach(fd int, prog []bpf.RawInstruction) error {
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("attach filter (%d instructions): %w", len(prog), err)
	}
	return nil
}

// knockFilter is the kernel filter of a capture's sockets: the prefilter's
// program for the link type if there is a prefilter, else the classic
// program.
type knockFilter struct {
	pf      *Prefilter
	link    listener.LinkType
	express bool // for the express socket
	classic []bpf.RawInstruction
}

func (k knockFilter) attach(fd int) error {
	if k.pf != nil {
		return k.pf.attach(fd, k.link, k.express)
	}
	return attach(fd, k.classic)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Link returns the link type of the frames: listener.LinkEthernet or listener.LinkIP.
func (c *Conn) Link() listener.LinkType { return c.link }

// ReadFrame blocks until a knock frame arrives and returns it. The frame's
// Data is a copy, valid until the next ReadFrame call, even after Close.
// It returns listener.ErrClosed after Close. Other errors leave the capture usable:
// for example ENETDOWN when the interface goes down (frames come again
// once it is up). ReadFrame allocates nothing.
func (c *Conn) ReadFrame() (listener.Frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, _, err := c.next(c.buf, true)
	return f, err
}

// ReadFrames blocks until a knock frame arrives, then stores in fs that
// frame and those ready after it, up to len(fs), without waiting for
// more, and returns how many. The frames' Data are copies, valid until the
// next ReadFrames call, even after Close. An error comes with n == 0: an
// error met after some frames is returned by the next call. It allocates
// only at its first call, or when fs grows.
func (c *Conn) ReadFrames(fs []listener.Frame) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bufs) < len(fs)*SnapLen {
		c.bufs = make([]byte, len(fs)*SnapLen)
	}
	n := 0
	for n < len(fs) {
		f, ok, err := c.next(c.bufs[n*SnapLen:(n+1)*SnapLen], n == 0)
		if err != nil {
			if n == 0 {
				return 0, err
			}
			c.pending = err
			break
		}
		if !ok {
			break
		}
		fs[n] = f
		n++
	}
	return n, nil
}

// next returns the next frame, copied into buf. With block false it
// returns false instead of waiting for one.
func (c *Conn) next(buf []byte, block bool) (listener.Frame, bool, error) {
	if err := c.pending; err != nil {
		c.pending = nil
		return listener.Frame{}, false, err
	}
	waited := false // for the ring to hand over the frames it holds back
	for {
		if c.closed.Load() {
			return listener.Frame{}, false, listener.ErrClosed
		}
		h, rok, err := c.ring.head()
		if err != nil {
			return listener.Frame{}, false, err
		}
		var p ringPacket
		switch {
		case rok:
			if c.ex != nil && c.ex.ahead.n > 0 && c.ex.ahead.match(c.ex.seen(frameData(h), headTime(h))) {
				// Returned already, from the express socket.
				if _, err := c.ring.take(h, nil); err != nil {
					return listener.Frame{}, false, err
				}
				c.ringTaken++
				continue
			}
			if p, err = c.ring.take(h, buf); err != nil {
				return listener.Frame{}, false, err
			}
			c.ringTaken++
			if c.ex != nil && c.ex.on.Load() {
				c.ex.behind.add(c.ex.seen(buf[:p.n], p.ts))
			}
		case c.ex != nil && c.ex.on.Load():
			ef, err := c.expressHead()
			if err != nil {
				return listener.Frame{}, false, err
			}
			if ef == nil {
				if !block {
					return listener.Frame{}, false, nil
				}
				if err := c.wait(-1); err != nil {
					return listener.Frame{}, false, err
				}
				continue
			}
			// The ring holds a copy of ef and of every frame returned
			// ahead whose copy has not come out; anything more is a
			// frame that came before ef: wait for the kernel to hand it
			// over (a block timeout at most).
			if !waited && c.ringHeld() > uint64(c.ex.ahead.n)+1 {
				if !block {
					return listener.Frame{}, false, nil
				}
				if err := c.waitRing(2 * c.tov); err != nil {
					return listener.Frame{}, false, err
				}
				waited = true
				continue
			}
			c.ex.ahead.add(c.ex.seen(ef.data[:ef.n], ef.ts))
			p = ringPacket{n: copy(buf, ef.data[:ef.n]), ts: ef.ts, ifindex: ef.ifindex, pkttype: ef.pkttype, proto: ef.proto}
			c.ex.pop()
			c.counts.express.Add(1)
		default:
			if !block {
				return listener.Frame{}, false, nil
			}
			if err := c.wait(-1); err != nil {
				return listener.Frame{}, false, err
			}
			continue
		}
		waited = false
		if err := c.countBurst(p.ts); err != nil {
			c.pending = err
		}
		if c.skip(p.pkttype) || c.notIP(p.proto, buf[:p.n]) {
			continue
		}
		c.counts.read.Add(1)
		return listener.Frame{Data: buf[:p.n], Time: time.Unix(0, p.ts), Link: c.link, Ifindex: p.ifindex}, true, nil
	}
}

// expressHead returns the oldest frame of the express socket that the
// ring has not returned, reading the socket when the queue is empty; nil
// when there is none.
func (c *Conn) expressHead() (*expressFrame, error) {
	for {
		if c.ex.n == 0 {
			if _, err := c.ex.fill(); err != nil {
				return nil, fmt.Errorf("capture %s: %w", c.name, err)
			}
		}
		ef := c.ex.peek()
		if ef == nil || c.ex.behind.n == 0 || !c.ex.behind.match(c.ex.seen(ef.data[:ef.n], ef.ts)) {
			return ef, nil
		}
		c.ex.pop() // the ring returned its copy
	}
}

// frameData returns the frame of the ring packet whose header is h.
func frameData(h []byte) []byte {
	mac := int(binary.NativeEndian.Uint16(h[pktMac:]))
	snap := int(binary.NativeEndian.Uint32(h[pktSnaplen:]))
	return h[mac : mac+snap]
}

// skip counts a frame of type pkttype that ReadFrame does not return, and
// reports whether it is one.
func (c *Conn) skip(pkttype uint8) bool {
	switch pkttype {
	case unix.PACKET_OUTGOING:
		c.counts.outgoing.Add(1)
	case unix.PACKET_OTHERHOST:
		c.counts.otherHost.Add(1)
	default:
		return false
	}
	return true
}

// notIP counts and reports a frame of a capture on all interfaces (no
// link header: the decoder goes by the IP version in the first byte)
// whose protocol field says it is not the IP version it starts with: a
// frame of another protocol whose payload looks like an IPv4 or IPv6
// knock must not be taken for one. The kernel's filter (Filter, or the
// Prefilter) drops such frames before they reach the socket, so the count
// stays 0 (TestCaptureAnyProtocol); the check stays in case a frame ever
// gets past it. Stats does not publish it: it counts no knock.
func (c *Conn) notIP(proto uint16, data []byte) bool {
	if c.link != listener.LinkIP {
		return false
	}
	if len(data) > 0 {
		switch v := data[0] >> 4; {
		case proto == unix.ETH_P_IP && v == 4, proto == unix.ETH_P_IPV6 && v == 6:
			return false
		}
	}
	c.counts.notIP.Add(1)
	return true
}

// countBurst counts a frame captured at ts towards the burst detection
// (burst.frame). At the start of a burst the express socket goes off.
func (c *Conn) countBurst(ts int64) error {
	if c.burst.frame(ts, time.Now().UnixNano()) && c.ex != nil {
		return c.steerExpress(true)
	}
	return nil
}

// steerExpress moves the express socket one step towards where it
// belongs: under a burst (busy) off and out of the receive path, else in
// it and on. A move in or out of the receive path runs on a goroutine of
// its own (it waits for a grace period); while one runs, nothing else
// changes. Close waits for it (fdMu). Should a move fail, the socket
// stays where it was: out of the receive path, the ring alone delivers
// every frame, a block timeout late when the traffic is light; in it
// with the filter that takes nothing, the kernel spends a little on it
// for every frame.
func (c *Conn) steerExpress(busy bool) error {
	ex := c.ex
	if ex.moving.Load() {
		return nil
	}
	switch all := ex.all.Load(); {
	case busy && ex.on.Load():
		if err := ex.disable(); err != nil {
			return fmt.Errorf("capture %s: %w", c.name, err)
		}
		c.moveExpress(false)
	case busy && all:
		c.moveExpress(false)
	case !busy && !all:
		c.moveExpress(true)
	case !busy && !ex.on.Load():
		if err := ex.enable(); err != nil {
			return fmt.Errorf("capture %s: %w", c.name, err)
		}
	}
	return nil
}

// moveExpress binds the express socket to every frame (all) or to
// parkProto, on a goroutine of its own.
func (c *Conn) moveExpress(all bool) {
	ex := c.ex
	ex.moving.Store(true)
	go func() {
		defer ex.moving.Store(false)
		c.fdMu.RLock()
		defer c.fdMu.RUnlock()
		if c.fd < 0 {
			return // closed
		}
		if ex.bind(all) == nil && !all {
			ex.parks.Add(1)
		}
	}()
}

// ringHeld returns how many frames the kernel has put in the ring that
// ReadFrame has not taken: those of a block not handed over yet.
func (c *Conn) ringHeld() uint64 {
	c.pollStats()
	_, recv := c.kernel.get()
	if recv <= c.ringTaken {
		return 0
	}
	return recv - c.ringTaken
}

// wait blocks until a frame may be ready (poll), on the express socket
// too while it is on. When a burst is over it turns the express socket on
// again first; while the socket is off, the wait ends when the burst
// would be over.
func (c *Conn) wait(timeout int) error {
	if c.ex == nil {
		return c.poll(false, timeout)
	}
	if c.pf != nil {
		if err := c.prefilterBurst(); err != nil {
			return err
		}
		check := prefilterQuiet
		if c.burst.pfDropping {
			check = prefilterCheck
		}
		if c.ex.on.Load() && (timeout < 0 || timeout > check) {
			timeout = check
		}
	}
	if !c.ex.on.Load() {
		left := c.burst.left(time.Now().UnixNano())
		if err := c.steerExpress(left > 0); err != nil {
			return err
		}
		if !c.ex.on.Load() {
			// Wait no longer than the burst lasts, or than a move
			// takes (it is checked again every millisecond).
			ms := 1
			if left > 0 && !c.ex.moving.Load() {
				ms = int((left + 1e6 - 1) / 1e6)
			}
			if timeout < 0 || ms < timeout {
				timeout = ms
			}
		}
	}
	return c.poll(c.ex.on.Load(), timeout)
}

// How often, in milliseconds, a reader with nothing to read looks at the
// prefilter's drop counter while the express socket is on: every
// prefilterCheck while the prefilter drops knocks, every prefilterQuiet
// while it drops none. Each look is a wake-up of the reader's thread
// (measured: an idle daemon that looked every 10 ms used 1.3 % of a CPU);
// a flood that starts in a quiet spell is found within prefilterQuiet,
// and until then costs the kernel the express socket's program too.
const (
	prefilterCheck = 10
	prefilterQuiet = 250
)

// prefilterBurst treats the knocks the prefilter drops as a burst: a flood
// the prefilter keeps from the ring never reaches countBurst, yet the
// express socket's program would still run for each of its frames. At
// busyFrames drops per busyWindow (on average since the latest check), the
// traffic is busy until busyHold from now and the express socket goes off.
// The count is shared by every capture of the prefilter.
func (c *Conn) prefilterBurst() error {
	now := time.Now().UnixNano()
	if !c.burst.lookDue(now) || !c.burst.drops(c.pf.dropped(), now) {
		return nil
	}
	return c.steerExpress(true)
}

// waitRing blocks until the kernel hands over a ring block, at most
// timeout milliseconds.
func (c *Conn) waitRing(timeout int) error { return c.poll(false, timeout) }

// poll blocks in poll(2), on the reader's own thread, until the kernel
// hands over a ring block, a frame comes to the express socket (when
// express is set), the socket reports an error, Close signals the
// eventfd, or timeout milliseconds pass (-1: no limit). (The runtime's
// network poller would wake the reader through another thread, which
// under a flood may wait behind the busy CPU that runs the receive path:
// measured, that let the ring overflow.)
func (c *Conn) poll(express bool, timeout int) error {
	pfds := c.pfds[:2]
	if express {
		pfds = c.pfds[:3]
	}
	for {
		if c.closed.Load() {
			return listener.ErrClosed
		}
		if c.ring.ready() {
			return nil
		}
		for i := range pfds {
			pfds[i].Revents = 0
		}
		n, err := unix.Poll(pfds, timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("capture %s: poll: %w", c.name, err)
		}
		if n == 0 {
			return nil
		}
		if pfds[1].Revents != 0 {
			continue // Close
		}
		if ev := pfds[0].Revents; ev&(unix.POLLERR|unix.POLLNVAL) != 0 && !c.ring.ready() {
			// The interface went down (ENETDOWN), for example. Reading
			// SO_ERROR clears it.
			n, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && n != 0 {
				err = syscall.Errno(n)
			} else if err == nil {
				err = fmt.Errorf("poll events %#x", ev)
			}
			return fmt.Errorf("capture %s: %w", c.name, err)
		}
		if express && pfds[2].Revents != 0 {
			if pfds[2].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
				n, err := unix.GetsockoptInt(c.ex.fd, unix.SOL_SOCKET, unix.SO_ERROR)
				if err == nil && n != 0 {
					err = syscall.Errno(n)
				} else if err == nil {
					err = fmt.Errorf("poll events %#x", pfds[2].Revents)
				}
				return fmt.Errorf("capture %s: express socket: %w", c.name, err)
			}
			return nil
		}
	}
}

// Close closes the socket and unmaps the ring. A pending ReadFrame returns
// listener.ErrClosed at once. Close is safe to call from any goroutine and more
// than once.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.pollStats() // keep the kernel's last counters
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	c.fdMu.RLock()
	_, werr := unix.Write(c.efd, one[:]) // wake a pending ReadFrame
	c.fdMu.RUnlock()

	c.mu.Lock() // wait for a ReadFrame to leave the ring
	defer c.mu.Unlock()
	c.fdMu.Lock()
	errs := []error{werr, unix.Close(c.fd), unix.Close(c.efd)}
	if c.ex != nil {
		errs = append(errs, unix.Close(c.ex.fd))
		c.ex.fd = -1
	}
	c.fd, c.efd = -1, -1
	c.fdMu.Unlock()
	errs = append(errs, unix.Munmap(c.ring.mem))
	c.ring.mem = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture %s: close: %w", c.name, err)
	}
	return nil
}

// Stats returns the counters since Listen; the kernel's (Packets, Drops,
// Freezes) are read from the socket while it is open, and keep their last
// values after Close. Safe to call from any goroutine.
func (c *Conn) Stats() Stats {
	if !c.closed.Load() {
		c.pollStats()
	}
	s, _ := c.kernel.get()
	s.Read = c.counts.read.Load()
	s.Express = c.counts.express.Load()
	s.Outgoing = c.counts.outgoing.Load()
	s.OtherHost = c.counts.otherHost.Load()
	return s
}

// pollStats adds the kernel's counters since the last poll to c.kernel.
func (c *Conn) pollStats() {
	c.fdMu.RLock()
	defer c.fdMu.RUnlock()
	if c.fd < 0 {
		return // closed meanwhile: the counters Close kept stay
	}
	// The kernel reports counts since the last read; tp_packets already
	// includes tp_drops.
	c.kernel.poll(c.fd)
}

// packetStats reads PACKET_STATISTICS of fd into p, size bytes, without
// allocating (unlike unix.GetsockoptTpacketStats), since ReadFrame calls it.
func packetStats(fd int, p unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS, uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// SetRanges replaces the kernel filter with one for ranges (a reload), or
// the prefilter's ranges. The kernel swaps the program (or the prefilter's
// bitmap) atomically; frames already in the ring were accepted by the old
// one, so the decoder checks the ranges again.
func (c *Conn) SetRanges(rs []inet.Range) error {
	t, err := ranges.New(rs)
	if err != nil {
		return fmt.Errorf("capture %s: %w", c.name, err)
	}
	c.fdMu.RLock()
	defer c.fdMu.RUnlock()
	if c.fd < 0 {
		return fmt.Errorf("capture %s: set ranges: %w", c.name, listener.ErrClosed)
	}
	if c.pf != nil {
		if err := c.pf.SetRanges(rs); err != nil {
			return fmt.Errorf("capture %s: set ranges: %w", c.name, err)
		}
		return nil
	}
	prog, err := filter(t, c.link)
	if err != nil {
		return fmt.Errorf("capture %s: %w", c.name, err)
	}
	if err := attach(c.fd, prog); err != nil {
		return fmt.Errorf("capture %s: set ranges: %w", c.name, err)
	}
	if c.ex != nil {
		if err := c.ex.setProg(knockFilter{link: c.link, classic: prog}); err != nil {
			return fmt.Errorf("capture %s: set ranges: %w", c.name, err)
		}
	}
	return nil
}
