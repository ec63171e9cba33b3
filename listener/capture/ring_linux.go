package capture

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of the TPACKET_V3 ring (linux/if_packet.h). All fields are in host
// byte order, except sll_protocol.
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// struct tpacket_hdr_v1.
	blkStatus   = 8  // block_status: TP_STATUS_KERNEL or TP_STATUS_USER
	blkNumPkts  = 12 // num_pkts
	blkFirstPkt = 16 // offset_to_first_pkt
	blkHdrLen   = 48

	// struct tpacket3_hdr.
	pktNext    = 0  // tp_next_offset
	pktSec     = 4  // tp_sec
	pktNsec    = 8  // tp_nsec
	pktSnaplen = 12 // tp_snaplen
	pktMac     = 24 // tp_mac: offset of the frame from the header
	pktHdrLen  = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr)); struct sockaddr_ll follows

	// struct sockaddr_ll, after the packet header.
	sllProtocol = pktHdrLen + 2 // big-endian
	sllIfindex  = pktHdrLen + 4
	sllPkttype  = pktHdrLen + 10
	sllLen      = 20
)

// ring reads a TPACKET_V3 receive ring: blocks that the kernel fills with
// packets and hands to the reader by setting the block's status to
// TP_STATUS_USER; the reader gives a block back by setting TP_STATUS_KERNEL.
// A ring is used by one goroutine at a time.
type ring struct {
	mem       []byte // the mmap'ed ring
	blockSize int
	numBlocks int

	block int    // index of the block being read, or to be read next
	open  bool   // the block is ours (TP_STATUS_USER) and is being read
	left  uint32 // packets of the open block not read yet
	off   int    // offset in the block of the next packet

	opened uint64 // blocks opened so far
}

// ringPacket is one packet of the ring, copied out.
type ringPacket struct {
	n       int   // bytes copied
	ts      int64 // capture time, Unix nanoseconds
	ifindex int
	pkttype uint8
	proto   uint16 // sll_protocol, the frame's EtherType
}

func (r *ring) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.blockSize+blkStatus]))
}

// ready reports whether a packet can be read without waiting.
func (r *ring) ready() bool {
	return r.open || atomic.LoadUint32(r.status(r.block))&unix.TP_STATUS_USER != 0
}

// release hands the current block back to the kernel and moves to the next.
func (r *ring) release() {
	atomic.StoreUint32(r.status(r.block), unix.TP_STATUS_KERNEL)
	r.open = false
	r.block = (r.block + 1) % r.numBlocks
}

// head returns the header of the next packet, opening the next block when
// the current one is done, without moving past it. It reports false when
// the kernel has not handed over a block yet.
func (r *ring) head() ([]byte, bool, error) {
	for {
		if !r.open {
			if atomic.LoadUint32(r.status(r.block))&unix.TP_STATUS_USER == 0 {
				return nil, false, nil
			}
			b := r.mem[r.block*r.blockSize:][:r.blockSize]
			r.left = binary.NativeEndian.Uint32(b[blkNumPkts:])
			r.off = int(binary.NativeEndian.Uint32(b[blkFirstPkt:]))
			r.open = true
			r.opened++
		}
		if r.left == 0 {
			r.release()
			continue
		}
		b := r.mem[r.block*r.blockSize:][:r.blockSize]
		if r.off < blkHdrLen || r.off > len(b)-pktHdrLen-sllLen {
			return r.corrupt("packet offset %d", r.off)
		}
		h := b[r.off:]
		mac := int(binary.NativeEndian.Uint16(h[pktMac:]))
		snap := int(binary.NativeEndian.Uint32(h[pktSnaplen:]))
		if mac < pktHdrLen+sllLen || snap > len(h)-mac {
			return r.corrupt("packet at %d: frame of %d bytes at %d", r.off, snap, mac)
		}
		return h, true, nil
	}
}

// headTime returns the capture time of the packet whose header is h, in
// Unix nanoseconds.
func headTime(h []byte) int64 {
	return int64(binary.NativeEndian.Uint32(h[pktSec:]))*1e9 + int64(binary.NativeEndian.Uint32(h[pktNsec:]))
}

// take copies the packet whose header head returned into buf (cut to
// len(buf)) and moves past it. A block is given back as soon as its last
// packet is copied out.
func (r *ring) take(h, buf []byte) (ringPacket, error) {
	mac := int(binary.NativeEndian.Uint16(h[pktMac:]))
	snap := int(binary.NativeEndian.Uint32(h[pktSnaplen:]))
	p := ringPacket{
		n:       copy(buf, h[mac:mac+snap]),
		ts:      headTime(h),
		ifindex: int(int32(binary.NativeEndian.Uint32(h[sllIfindex:]))),
		pkttype: h[sllPkttype],
		proto:   binary.BigEndian.Uint16(h[sllProtocol:]),
	}
	next := int(binary.NativeEndian.Uint32(h[pktNext:]))
	r.left--
	if r.left == 0 {
		r.release()
	} else if next <= 0 || next > len(h) {
		_, _, err := r.corrupt("packet at %d: next offset %d", r.off, next)
		return p, err
	} else {
		r.off += next
	}
	return p, nil
}

// corrupt skips the rest of a block whose headers make no sense; it never
// happens with a sane kernel.
func (r *ring) corrupt(format string, args ...any) ([]byte, bool, error) {
	b := r.block
	r.release()
	return nil, false, fmt.Errorf("capture: ring block %d: "+format+": block skipped", append([]any{b}, args...)...)
}
