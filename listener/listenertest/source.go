// Package listenertest has test doubles for code that reads frames:
// SliceSource, a Source over frames in memory; ReadPcap and WritePcap, for
// pcap files; and Packet, the one builder of knock frames, with the frame
// cases (Cases) that the decoder and the capture filters are checked
// against. For tests only: it links gopacket's pcapgo, which no binary
// needs.
package listenertest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/tknock/tknock/listener"
)

// SliceSource is a Source over frames in memory, for tests and in-process
// benchmarks, and a BatchSource. ReadFrame and ReadFrames return the frames
// in order, then io.EOF; after Close they return ErrClosed. They must be
// called from one goroutine at a time; Close may be called from any.
type SliceSource struct {
	frames []listener.Frame
	next   int
	closed atomic.Bool
}

// NewSliceSource returns a source that reads frames. The frames are not
// copied; the source never modifies them.
func NewSliceSource(frames []listener.Frame) *SliceSource {
	return &SliceSource{frames: frames}
}

// ReadFrame returns the next frame, io.EOF when there is none left, or
// ErrClosed after Close. It never blocks.
func (s *SliceSource) ReadFrame() (listener.Frame, error) {
	if s.closed.Load() {
		return listener.Frame{}, listener.ErrClosed
	}
	if s.next >= len(s.frames) {
		return listener.Frame{}, io.EOF
	}
	f := s.frames[s.next]
	s.next++
	return f, nil
}

// ReadFrames stores the next frames in fs, as many as are left up to
// len(fs), and returns how many; io.EOF (and 0) when there is none left,
// or ErrClosed after Close. It never blocks.
func (s *SliceSource) ReadFrames(fs []listener.Frame) (int, error) {
	if s.closed.Load() {
		return 0, listener.ErrClosed
	}
	if s.next >= len(s.frames) {
		return 0, io.EOF
	}
	n := copy(fs, s.frames[s.next:])
	s.next += n
	return n, nil
}

// Close makes later ReadFrame and ReadFrames calls return ErrClosed.
func (s *SliceSource) Close() error {
	s.closed.Store(true)
	return nil
}

// linkTypeRawAlt is DLT_RAW as most BSDs and old Linux libpcap write it.
const linkTypeRawAlt = 12

// ReadPcap reads every frame of a pcap or pcapng stream (as tcpdump writes
// it). Supported link types: Ethernet, raw IP (101, 12, 228, 229), and the
// Linux cooked header SLL ("tcpdump -i any -y LINUX_SLL"), which is removed
// (outgoing and non-IP packets are left out, as the capture does). SLL2,
// tcpdump's default for "-i any", does not fit gopacket's 8-bit link type.
func ReadPcap(r io.Reader) ([]listener.Frame, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("pcap: read header: %w", err)
	}
	type reader interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	var pr reader
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		pr, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		pr, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	lt := pr.LinkType()
	var link listener.LinkType
	switch lt {
	case layers.LinkTypeEthernet:
		link = listener.LinkEthernet
	case layers.LinkTypeRaw, linkTypeRawAlt, layers.LinkTypeIPv4, layers.LinkTypeIPv6, layers.LinkTypeLinuxSLL:
		link = listener.LinkIP
	default:
		return nil, fmt.Errorf("pcap: link type %v (%d): want Ethernet, raw IP, or Linux SLL", lt, uint8(lt))
	}
	var frames []listener.Frame
	for n := 1; ; n++ {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("pcap: packet %d: %w", n, err)
		}
		f := listener.Frame{Data: data, Time: ci.Timestamp, Link: link, Ifindex: ci.InterfaceIndex}
		if lt == layers.LinkTypeLinuxSLL {
			var keep bool
			if f, keep, err = cooked(f); err != nil {
				return nil, fmt.Errorf("pcap: packet %d: %w", n, err)
			}
			if !keep {
				continue
			}
		}
		frames = append(frames, f)
	}
}

// cooked removes the 16-byte Linux SLL header from f. It reports false for
// outgoing and non-IP packets.
func cooked(f listener.Frame) (listener.Frame, bool, error) {
	const hdr = 16
	if len(f.Data) < hdr {
		return f, false, fmt.Errorf("%d bytes, shorter than a Linux SLL header (%d)", len(f.Data), hdr)
	}
	pkttype := binary.BigEndian.Uint16(f.Data[0:])
	proto := binary.BigEndian.Uint16(f.Data[14:])
	if pkttype == 4 /* PACKET_OUTGOING */ || (proto != 0x0800 && proto != 0x86dd) {
		return f, false, nil
	}
	f.Data, f.Link = f.Data[hdr:], listener.LinkIP
	return f, true, nil
}

// WritePcap writes frames as a pcap stream with nanosecond timestamps. All
// frames must have the same link type.
func WritePcap(w io.Writer, frames []listener.Frame) error {
	lt := layers.LinkTypeEthernet
	if len(frames) > 0 {
		switch frames[0].Link {
		case listener.LinkEthernet:
		case listener.LinkIP:
			lt = layers.LinkTypeRaw
		default:
			return fmt.Errorf("pcap: frame 0: unknown link type %v", frames[0].Link)
		}
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(65535, lt); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	for i, f := range frames {
		if f.Link != frames[0].Link {
			return fmt.Errorf("pcap: frame %d: link type %v, but frame 0 is %v: a pcap file has one", i, f.Link, frames[0].Link)
		}
		ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Data), Length: len(f.Data), InterfaceIndex: f.Ifindex}
		if err := pw.WritePacket(ci, f.Data); err != nil {
			return fmt.Errorf("pcap: frame %d: %w", i, err)
		}
	}
	return nil
}
