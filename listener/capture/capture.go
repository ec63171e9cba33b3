package capture

import (
	"fmt"
	"time"

	"github.com/tknock/tknock/inet"
)

// Config configures Listen.
type Config struct {
	// Interface is the network interface to capture on. "" or "any"
	// captures on every interface of the network namespace of the calling
	// thread; the frames then start at the IP header (listener.LinkIP). On a named
	// Ethernet or loopback interface frames start with the Ethernet header
	// (listener.LinkEthernet); on other link types (tun, WireGuard, PPP) at the IP
	// header.
	Interface string

	// Ranges are the knock ranges; the kernel filter passes only knocks to
	// them (see Filter). They can be replaced with Conn.SetRanges.
	Ranges []inet.Range

	// BlockSize is the size in bytes of one block of the memory-mapped
	// ring: a power of two, at least the page size. 0 means
	// DefaultBlockSize.
	BlockSize int

	// NumBlocks is the number of blocks in the ring, at least 2. 0 means
	// DefaultNumBlocks. The ring takes BlockSize*NumBlocks bytes of kernel
	// memory, mapped into the process.
	NumBlocks int

	// BlockTimeout is how long the kernel fills a block before it hands
	// the block to the reader even if it is not full: the reader is only
	// woken when a block is handed over, so this bounds the latency a
	// knock gets from the ring, which carries the frames under a burst
	// (light traffic goes the express way, at once). Whole milliseconds,
	// 1ms to 10s. 0 means DefaultBlockTimeout.
	BlockTimeout time.Duration

	// NoExpress leaves out the express socket (see Conn): every frame
	// then comes through the ring, a block timeout late when the traffic
	// is light. For measurements.
	NoExpress bool

	// Prefilter, if not nil, is the kernel filter of the capture's
	// sockets in place of Filter's classic program: it passes only the
	// knocks the tracker can use (see Prefilter). The capture does not
	// own it; SetRanges sets its ranges.
	Prefilter *Prefilter
}

// Ring defaults: 8 blocks of 256 KiB (2 MiB) hold about 13,000 knock
// frames, 50 ms of a 250,000 packets/s flood. Every block the kernel
// retires wakes the reader from the CPU that receives the flood: large
// blocks, about 7 ms of such a flood each, make few wake-ups (measured,
// against 64 KiB blocks: the rate a flood reaches with the daemon
// attached rose by 0.7 to 2.8 points of the rate with no reader). The
// block timeout only delays frames of a burst (lone knocks come through
// the express socket); 8 ms rather than 1 ms lets a flood fill its blocks
// instead of the timer retiring them part full, each with a wake-up
// (measured: from 80 % to 83 %).
const (
	DefaultBlockSize    = 256 << 10
	DefaultNumBlocks    = 8
	DefaultBlockTimeout = 8 * time.Millisecond
)

// maxRingBytes bounds the ring: 1 GiB.
const maxRingBytes = 1 << 30

// withDefaults fills the zero fields and checks the ring geometry.
func (c Config) withDefaults(pageSize int) (Config, error) {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.NumBlocks == 0 {
		c.NumBlocks = DefaultNumBlocks
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.BlockSize < pageSize || c.BlockSize&(c.BlockSize-1) != 0 {
		return c, fmt.Errorf("capture: block size %d: want a power of two of at least the page size, %d", c.BlockSize, pageSize)
	}
	if c.NumBlocks < 2 {
		return c, fmt.Errorf("capture: %d blocks: want at least 2", c.NumBlocks)
	}
	if int64(c.BlockSize)*int64(c.NumBlocks) > maxRingBytes {
		return c, fmt.Errorf("capture: ring of %d blocks of %d bytes: more than %d bytes", c.NumBlocks, c.BlockSize, maxRingBytes)
	}
	if c.BlockTimeout < time.Millisecond || c.BlockTimeout > 10*time.Second || c.BlockTimeout%time.Millisecond != 0 {
		return c, fmt.Errorf("capture: block timeout %v: want whole milliseconds from 1ms to 10s", c.BlockTimeout)
	}
	return c, nil
}

// Stats are the counters of a Conn since Listen. A frame the kernel's
// filter drops is in none of them: not a knock (Filter), or on all
// interfaces a frame whose protocol field is not the IP version it starts
// with. The kernel counts only what a socket's filter passes, and a count
// of such frames would tell nothing about knocks. (The Prefilter counts
// the knocks it drops, in PrefilterStats.)
type Stats struct {
	// Packets is the number of frames that passed the kernel filter,
	// including Drops (PACKET_STATISTICS tp_packets).
	Packets uint64
	// Drops is the number of frames that passed the filter but found the
	// ring full (tp_drops): the reader fell behind.
	Drops uint64
	// Freezes is the number of times the ring filled up (tp_freeze_q_cnt).
	Freezes uint64
	// Read is the number of frames ReadFrame returned.
	Read uint64
	// Express is how many frames came through the express socket rather
	// than the ring (Linux).
	Express uint64
	// Outgoing is the number of outgoing frames ReadFrame skipped (the
	// socket asks the kernel to leave them out; this counts any that come).
	Outgoing uint64
	// OtherHost is the number of frames to another host's MAC address
	// (PACKET_OTHERHOST, on a promiscuous interface) ReadFrame skipped.
	OtherHost uint64
}
