package listener

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// trkFrame returns an Ethernet frame carrying a knock (a TCP SYN, or a UDP
// datagram) from src to port, or a TCP segment with flags ack when
// ack is set.
func trkFrame(t testing.TB, src netip.Addr, proto inet.Proto, port uint16, ack bool, at time.Time) Frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	ipProto := layers.IPProtocolTCP
	if proto == inet.UDP {
		ipProto = layers.IPProtocolUDP
	}
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: ipProto, SrcIP: src.AsSlice(), DstIP: net.IP{192, 0, 2, 1}}
		ip, ipl = v4, v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipProto, SrcIP: src.AsSlice(), DstIP: net.ParseIP("2001:db8::1")}
		ip, ipl = v6, v6
	}
	var l4 gopacket.SerializableLayer
	if proto == inet.UDP {
		u := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(port), SYN: !ack, ACK: ack, Window: 1024}
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ipl, l4); err != nil {
		t.Fatal(err)
	}
	return Frame{Data: bytes.Clone(buf.Bytes()), Time: at, Link: LinkEthernet, Ifindex: 2}
}

// trkSequenceFrames returns the frames of alice's sequence for src at
// start, with noise around: an ACK to the anchor port and SYNs to ports
// outside the range, and another source's stray knock.
func trkSequenceFrames(t testing.TB, u User, src netip.Addr, start time.Time) []Frame {
	t.Helper()
	s := trkSeq(t, u, "ssh", totpseq.Window(start, u.Params.Period), src)
	var fs []Frame
	at := start
	for _, p := range s {
		fs = append(fs,
			trkFrame(t, src, inet.TCP, p, true, at), // an ACK is no knock
			trkFrame(t, src, inet.TCP, 22, false, at),
			trkFrame(t, src, inet.TCP, p, false, at),
			trkFrame(t, trkB, inet.TCP, p+1, false, at))
		at = at.Add(25 * time.Millisecond)
	}
	return fs
}

func TestRunSliceSource(t *testing.T) {
	tr, rec := trkNew(t, Config{Skew: 1, Capacity: 100}, alice)
	frames := append(trkSequenceFrames(t, alice, trkA, trkAt(trkMid)), trkSequenceFrames(t, alice, trkA6, trkAt(trkMid+time.Second))...)
	dec := NewDecoder(tr.Ranges())
	if err := Run(context.Background(), newFrameSource(frames), dec, tr); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rec.events) != 2 || rec.events[0].Src != trkA || rec.events[1].Src != trkA6 || rec.events[1].Kind != Opened {
		t.Errorf("events %+v, want openings for %v and %v", rec.events, trkA, trkA6)
	}
	if s := dec.Stats(); s.Knocks != 16 {
		t.Errorf("decoder stats %+v, want 16 knocks (8 per sequence, 4 of them strays)", s)
	}
}

// frameSource is a BatchSource over frames in memory, then io.EOF
// (listenertest.SliceSource, which this package's tests cannot import).
type frameSource struct{ frames []Frame }

func newFrameSource(frames []Frame) *frameSource { return &frameSource{frames} }

func (s *frameSource) ReadFrame() (Frame, error) {
	var f [1]Frame
	_, err := s.ReadFrames(f[:])
	return f[0], err
}

func (s *frameSource) ReadFrames(fs []Frame) (int, error) {
	if len(s.frames) == 0 {
		return 0, io.EOF
	}
	n := copy(fs, s.frames)
	s.frames = s.frames[n:]
	return n, nil
}

func (s *frameSource) Close() error { return nil }

// plainSource hides a source's ReadFrames: Run reads it one frame at a
// time.
type plainSource struct{ Source }

// TestRunPlainSource: a source read one frame at a time gives the same
// events and counters as the same frames read in batches.
func TestRunPlainSource(t *testing.T) {
	frames := append(trkSequenceFrames(t, alice, trkA, trkAt(trkMid)), trkSequenceFrames(t, alice, trkA6, trkAt(trkMid+time.Second))...)
	type result struct {
		Events []Event
		Dec    DecoderStats
		Trk    Stats
	}
	run := func(src Source) result {
		tr, rec := trkNew(t, Config{Skew: 1, Capacity: 100}, alice)
		dec := NewDecoder(tr.Ranges())
		if err := Run(context.Background(), src, dec, tr); err != nil {
			t.Fatalf("Run: %v", err)
		}
		s := tr.Stats()
		s.TableBuilds, s.TableBuild = 0, 0 // the build-ahead goroutine's timing
		return result{rec.events, dec.Stats(), s}
	}
	batched := run(newFrameSource(frames))
	plain := run(plainSource{newFrameSource(frames)})
	if _, ok := Source(plainSource{}).(BatchSource); ok {
		t.Fatal("plainSource has ReadFrames")
	}
	if len(plain.Events) != 2 {
		t.Errorf("one frame at a time: events %+v, want two openings", plain.Events)
	}
	if diff := cmp.Diff(batched, plain, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("one frame at a time differs from batches (-batches +frames):\n%s", diff)
	}
}

// trkChanSource is a Source fed through a channel; ReadFrame blocks until
// a frame comes or Close.
type trkChanSource struct {
	frames chan Frame
	err    error // returned once the channel is closed
	once   sync.Once
	closed chan struct{}
}

func newTrkChanSource() *trkChanSource {
	return &trkChanSource{frames: make(chan Frame), closed: make(chan struct{})}
}

func (s *trkChanSource) ReadFrame() (Frame, error) {
	select {
	case f, ok := <-s.frames:
		if !ok {
			return Frame{}, s.err
		}
		return f, nil
	case <-s.closed:
		return Frame{}, ErrClosed
	}
}

func (s *trkChanSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestRunCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, _ := trkNew(t, Config{Capacity: 10, Now: func() time.Time { return trkT0 }}, alice)
		src := newTrkChanSource()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, src, NewDecoder(tr.Ranges()), tr) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
		select {
		case <-src.closed:
		default:
			t.Error("Run did not close the source")
		}
	})
}

func TestRunReadError(t *testing.T) {
	tr, _ := trkNew(t, Config{Capacity: 10}, alice)
	src := newTrkChanSource()
	src.err = errors.New("ring broken")
	close(src.frames)
	err := Run(context.Background(), src, NewDecoder(tr.Ranges()), tr)
	if err == nil || !errors.Is(err, src.err) {
		t.Errorf("Run: %v, want the read error", err)
	}
	// A source closed by someone else ends Run without an error.
	src = newTrkChanSource()
	_ = src.Close()
	if err := Run(context.Background(), src, NewDecoder(tr.Ranges()), tr); err != nil {
		t.Errorf("Run on a closed source: %v", err)
	}
}

// TestRunBuildsAhead: while Run runs, the anchor table of the next window
// boundary is built before the boundary, so the first knock after it
// builds nothing.
func TestRunBuildsAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // 2000-01-01 00:00:00 UTC in the bubble: a boundary of period 30
		if start.Unix()%30 != 0 {
			t.Fatalf("bubble time %v is not a window boundary", start)
		}
		rec := &trkRec{}
		tr, err := NewTracker(Config{Skew: 1, Capacity: 10}, []User{alice}, start, rec.emit)
		if err != nil {
			t.Fatal(err)
		}
		src := newTrkChanSource()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, src, NewDecoder(tr.Ranges()), tr) }()

		time.Sleep(28 * time.Second)
		synctest.Wait()
		if n := tr.Stats().TableBuilds; n != 1 {
			t.Errorf("at 28 s: %d tables built, want 1", n)
		}
		time.Sleep(1500 * time.Millisecond) // 29.5 s: the lead is 1 s
		synctest.Wait()
		if n := tr.Stats().TableBuilds; n != 2 {
			t.Errorf("at 29.5 s: %d tables built, want 2 (the next one ahead)", n)
		}
		time.Sleep(time.Second) // 30.5 s: past the boundary
		for _, f := range trkSequenceFrames(t, alice, trkA, time.Now()) {
			src.frames <- f
		}
		synctest.Wait()
		if n := tr.Stats().TableBuilds; n != 2 {
			t.Errorf("after the boundary: %d tables built, want still 2", n)
		}
		if len(rec.events) != 1 || rec.events[0].Kind != Opened || rec.events[0].Offset != 0 {
			t.Errorf("events %+v, want one opening", rec.events)
		}
		// The table in use is the one built ahead.
		if tab := tr.st.tab; tab.from != start.Add(30*time.Second).UnixNano() {
			t.Errorf("table from %v, want the boundary", time.Unix(0, tab.from))
		}
		// And the next boundary too, after a reload.
		if err := tr.SetUsers([]User{alice, carol}, time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		builds := tr.Stats().TableBuilds
		for _, f := range trkSequenceFrames(t, carol, trkB6, time.Now()) {
			src.frames <- f
		}
		synctest.Wait()
		if n := tr.Stats().TableBuilds; n != builds {
			t.Errorf("after a reload and a boundary: the knocks built %d tables", n-builds)
		}
		if len(rec.events) != 2 || rec.events[1].User != "carol" {
			t.Errorf("events %+v, want carol's opening second", rec.events)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
