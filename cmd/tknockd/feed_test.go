package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

// fakeCapture is a capture fed by a test: frames pushed with push come out
// of ReadFrame, fail makes the next ReadFrame return an error (as when the
// interface goes down), and Close unblocks ReadFrame.
type fakeCapture struct {
	iface  string
	frames chan listener.Frame
	errs   chan error
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex // guards ranges
	ranges []inet.Range
	read   uint64 // frames returned; owned by the ReadFrame caller until Close
}

func newFakeCapture(iface string, ranges []inet.Range) *fakeCapture {
	return &fakeCapture{
		iface:  iface,
		frames: make(chan listener.Frame, 64),
		errs:   make(chan error, 1),
		done:   make(chan struct{}),
		ranges: ranges,
	}
}

func (c *fakeCapture) ReadFrame() (listener.Frame, error) {
	select {
	case <-c.done:
		return listener.Frame{}, listener.ErrClosed
	default:
	}
	select {
	case f := <-c.frames:
		c.read++
		return f, nil
	case err := <-c.errs:
		return listener.Frame{}, err
	case <-c.done:
		return listener.Frame{}, listener.ErrClosed
	}
}

func (c *fakeCapture) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// ReadFrames makes the fake a batch source: it waits for a frame as
// ReadFrame does, then takes the frames that are already there, up to
// len(fs). An error comes alone.
func (c *fakeCapture) ReadFrames(fs []listener.Frame) (int, error) {
	f, err := c.ReadFrame()
	if err != nil {
		return 0, err
	}
	fs[0] = f
	n := 1
	for n < len(fs) {
		select {
		case f := <-c.frames:
			c.read++
			fs[n] = f
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (c *fakeCapture) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *fakeCapture) SetRanges(r []inet.Range) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ranges = r
	return nil
}

func (c *fakeCapture) getRanges() []inet.Range {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ranges
}

func (c *fakeCapture) Stats() listener.CaptureStats {
	return listener.CaptureStats{Packets: 10, Drops: 1, Express: 4}
}

// fakeNet hands out fake captures and can pretend that interfaces are
// missing.
type fakeNet struct {
	mu      sync.Mutex // guards the fields below
	missing map[string]bool
	opened  []*fakeCapture
	opens   chan *fakeCapture   // every successful open, for tests that wait
	pf      *listener.Prefilter // the prefilter the latest open was given
}

func newFakeNet() *fakeNet {
	return &fakeNet{missing: map[string]bool{}, opens: make(chan *fakeCapture, 16)}
}

// openWith is open as deps.openCapture. A fake capture has no kernel
// filter: the prefilter, if any, is only noted.
func (n *fakeNet) openWith(iface string, ranges []inet.Range, pf *listener.Prefilter) (capture, error) {
	n.mu.Lock()
	n.pf = pf
	n.mu.Unlock()
	return n.open(iface, ranges)
}

func (n *fakeNet) open(iface string, ranges []inet.Range) (capture, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.missing[iface] {
		return nil, fmt.Errorf("interface %q: %w", iface, syscall.ENODEV)
	}
	c := newFakeCapture(iface, ranges)
	n.opened = append(n.opened, c)
	select {
	case n.opens <- c:
	default:
	}
	return c, nil
}

func (n *fakeNet) setMissing(iface string, missing bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.missing[iface] = missing
}

func (n *fakeNet) waitOpen(t *testing.T) *fakeCapture {
	t.Helper()
	select {
	case c := <-n.opens:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no capture opened within 10s")
		return nil
	}
}

func frame(b byte) listener.Frame { return listener.Frame{Data: []byte{b}} }

func TestFeedMergesInterfaces(t *testing.T) {
	n := newFakeNet()
	ranges := []inet.Range{{Proto: 6, Lo: 10000, Hi: 10999}}
	f, err := openFeed([]string{"eth0", "eth1"}, ranges, n.open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eth0, eth1 := n.waitOpen(t), n.waitOpen(t)
	eth0.frames <- frame(1)
	eth1.frames <- frame(2)
	eth0.frames <- frame(3)
	got := map[byte]bool{}
	for range 3 {
		fr, err := f.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		got[fr.Data[0]] = true
	}
	if len(got) != 3 {
		t.Errorf("read frames %v, want 1, 2 and 3", got)
	}

	// Reload: every capture gets the new ranges.
	newRanges := []inet.Range{{Proto: 17, Lo: 40000, Hi: 40999}}
	if err := f.SetRanges(newRanges); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fakeCapture{eth0, eth1} {
		if got := c.getRanges(); len(got) != 1 || got[0] != newRanges[0] {
			t.Errorf("%s ranges after SetRanges: %v", c.iface, got)
		}
	}
	if s := f.Stats(); s.Packets != 20 || s.Drops != 2 {
		t.Errorf("Stats = %+v, want the sum of both captures", s)
	}

	// Close unblocks a pending ReadFrame.
	errc := make(chan error, 1)
	go func() {
		_, err := f.ReadFrame()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	f.Close()
	if err := <-errc; !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrame after Close: %v, want ErrClosed", err)
	}
	if !eth0.closed() || !eth1.closed() {
		t.Errorf("Close left a capture open")
	}
}

// plainCapture is a capture without ReadFrames: only the methods of the
// capture interface are promoted.
type plainCapture struct{ capture }

// readFrames calls f.ReadFrames with room for max frames and returns the
// first byte of each frame read.
func readFrames(t *testing.T, f *feed, max int) []byte {
	t.Helper()
	fs := make([]listener.Frame, max)
	n, err := f.ReadFrames(fs)
	if err != nil || n < 1 || n > max {
		t.Fatalf("ReadFrames(%d frames) = %d, %v; want 1 to %d frames", max, n, err, max)
	}
	var got []byte
	for _, fr := range fs[:n] {
		got = append(got, fr.Data[0])
	}
	return got
}

// TestFeedReadFrames: a feed of one capture hands over every frame the
// capture has ready, up to the room given, and reopens a failed capture
// as ReadFrame does; a feed of several interfaces, or of a capture without
// a batch read, hands over one frame at a time.
func TestFeedReadFrames(t *testing.T) {
	n := newFakeNet()
	f, err := openFeed([]string{"eth0"}, nil, n.open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := n.waitOpen(t)
	for i := range 5 {
		first.frames <- frame(byte(1 + i))
	}
	if got := readFrames(t, f, 3); string(got) != "\x01\x02\x03" {
		t.Errorf("first ReadFrames: frames %v, want 1 2 3", got)
	}
	if got := readFrames(t, f, 8); string(got) != "\x04\x05" {
		t.Errorf("second ReadFrames: frames %v, want 4 5", got)
	}
	// A failed capture is reopened; the run loop sees frames, not the error.
	first.errs <- fmt.Errorf("capture eth0: %w", syscall.ENETDOWN)
	got := make(chan string)
	go func() {
		fs := make([]listener.Frame, 8)
		n, err := f.ReadFrames(fs)
		if err != nil {
			got <- err.Error()
			return
		}
		var b []byte
		for _, fr := range fs[:n] {
			b = append(b, fr.Data[0])
		}
		got <- string(b)
	}()
	second := n.waitOpen(t)
	second.frames <- frame(6)
	if g := <-got; g != "\x06" {
		t.Errorf("ReadFrames across a reopen: %q, want frame 6", g)
	}
	f.Close()
	if n, err := f.ReadFrames(make([]listener.Frame, 4)); n != 0 || !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrames after Close = %d, %v; want 0, ErrClosed", n, err)
	}

	// A capture without ReadFrames: one frame at a time.
	plain := func(iface string, ranges []inet.Range) (capture, error) {
		c, err := n.open(iface, ranges)
		if err != nil {
			return nil, err
		}
		return plainCapture{c}, nil
	}
	fp, err := openFeed([]string{"eth0"}, nil, plain, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	c := n.waitOpen(t)
	c.frames <- frame(7)
	c.frames <- frame(8)
	for _, want := range []byte{7, 8} {
		if got := readFrames(t, fp, 8); len(got) != 1 || got[0] != want {
			t.Errorf("ReadFrames of a plain capture: frames %v, want %d alone", got, want)
		}
	}

	// Two interfaces: the batch one of them has ready, up to the room
	// given, the rest of it with the next call; in order.
	f2, err := openFeed([]string{"eth0", "eth1"}, nil, n.open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	eth0, eth1 := n.waitOpen(t), n.waitOpen(t)
	for i := range 3 {
		eth0.frames <- frame(byte(9 + i))
	}
	var all []byte
	for len(all) < 3 {
		got := readFrames(t, f2, 1)
		all = append(all, got...)
	}
	if string(all) != "\x09\x0a\x0b" {
		t.Errorf("ReadFrames of two interfaces, one frame at a time: frames %v, want 9 10 11", all)
	}
	eth1.frames <- frame(12)
	if got := readFrames(t, f2, 8); string(got) != "\x0c" {
		t.Errorf("ReadFrames of two interfaces: frames %v, want 12", got)
	}
}

func TestFeedOpenFails(t *testing.T) {
	n := newFakeNet()
	n.setMissing("eth1", true)
	_, err := openFeed([]string{"eth0", "eth1"}, nil, n.open, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "interface eth1") {
		t.Fatalf("openFeed with a missing interface: %v", err)
	}
	if !n.opened[0].closed() {
		t.Errorf("eth0's capture left open after eth1 failed")
	}
}

// TestFeedReattach: when an interface's capture fails, the feed reopens it,
// retrying while the interface is missing, and frames flow again; the run
// loop never sees the error.
func TestFeedReattach(t *testing.T) {
	n := newFakeNet()
	var logBuf syncBuffer
	f, err := openFeed([]string{"eth0"}, nil, n.open, zerolog.New(&logBuf))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := n.waitOpen(t)

	got := make(chan byte)
	go func() {
		for {
			fr, err := f.ReadFrame()
			if err != nil {
				close(got)
				return
			}
			got <- fr.Data[0]
		}
	}()
	first.frames <- frame(1)
	if b := <-got; b != 1 {
		t.Fatalf("frame %d, want 1", b)
	}

	n.setMissing("eth0", true)
	first.errs <- fmt.Errorf("capture eth0: %w", syscall.ENETDOWN)
	// Two failed reopens, then the interface is back.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logBuf.String(), "capture reopen failed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reopen logged:\n%s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.setMissing("eth0", false)
	second := n.waitOpen(t)
	if !first.closed() {
		t.Errorf("the failed capture was not closed")
	}
	second.frames <- frame(2)
	if b := <-got; b != 2 {
		t.Fatalf("frame %d after reattach, want 2", b)
	}
	for _, want := range []string{`"level":"warn"`, "capture failed; reopening", "network is down", "capture reattached", `"interface":"eth0"`} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logBuf.String())
		}
	}
	if s := f.Stats(); s.Packets != 20 {
		t.Errorf("Stats().Packets = %d after a reopen, want 20 (the closed capture's counters are kept)", s.Packets)
	}
	f.Close()
	if _, ok := <-got; ok {
		t.Errorf("frames after Close")
	}
}
