package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tknock/tknock/inet"
)

// Knock is one decoded knock packet. Values only; it holds no reference to
// the frame it came from.
type Knock struct {
	Src   netip.Addr // source address, unmapped (an IPv4 source is a 4-byte Addr), no zone
	Proto inet.Proto // TCP (SYN without ACK) or UDP
	Port  uint16     // destination port
	Time  time.Time  // capture timestamp (from the ring's frame header)
}

// LinkType says where a frame starts.
type LinkType uint8

// Link types.
const (
	LinkEthernet LinkType = 1 // the frame starts with a 14-byte Ethernet header
	LinkIP       LinkType = 2 // the frame starts at the IPv4 or IPv6 header
)

// String returns "ethernet", "ip" or "link(N)".
func (l LinkType) String() string {
	switch l {
	case LinkEthernet:
		return "ethernet"
	case LinkIP:
		return "ip"
	}
	return fmt.Sprintf("link(%d)", uint8(l))
}

// Frame is one captured frame. Data is valid only until the next ReadFrame
// call on the Source that returned it.
type Frame struct {
	Data    []byte
	Time    time.Time // capture timestamp
	Link    LinkType
	Ifindex int // interface the frame arrived on; 0 when unknown
}

// Source is what the run loop reads frames from: the AF_PACKET ring
// (Capture), or a fake (SliceSource).
type Source interface {
	// ReadFrame blocks until a frame is available. It returns ErrClosed
	// after Close. The frame's Data is valid until the next call.
	ReadFrame() (Frame, error)
	// Close unblocks a pending ReadFrame at once. It is safe to call from
	// another goroutine, and more than once.
	Close() error
}

// BatchSource is a Source that hands over, in one call, every frame it
// has ready. Run reads a batch of frames at a time from it, and gives the
// knocks among them to the tracker together, which overlaps the cache
// misses of their state; it never waits for a batch to fill.
// Implementing it is optional: Run reads a plain Source one frame at a
// time.
type BatchSource interface {
	Source
	// ReadFrames blocks until at least one frame is ready, then stores in
	// fs the frames that are ready, up to len(fs), without waiting for
	// more, and returns how many. Their Data stays valid until the next
	// ReadFrames or ReadFrame call. An error comes with n == 0: ErrClosed
	// after Close, io.EOF at the end of a finite source. len(fs) must be
	// at least 1. It is called from one goroutine at a time.
	ReadFrames(fs []Frame) (n int, err error)
}

// ErrClosed is returned by ReadFrame after Close.
var ErrClosed = errors.New("listener: source closed")
