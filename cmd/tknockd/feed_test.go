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
	ranges []listener.PortRange
	read   uint64 // frames returned; owned by the ReadFrame caller until Close
}

func newFakeCapture(iface string, ranges []listener.PortRange) *fakeCapture {
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

// Buffered makes the fake a listener.BatchSource.
func (c *fakeCapture) Buffered() bool {
	return len(c.frames) > 0 || len(c.errs) > 0 || c.closed()
}

func (c *fakeCapture) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *fakeCapture) SetRanges(r []listener.PortRange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ranges = r
	return nil
}

func (c *fakeCapture) getRanges() []listener.PortRange {
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
	opens   chan *fakeCapture // every successful open, for tests that wait
}

func newFakeNet() *fakeNet {
	return &fakeNet{missing: map[string]bool{}, opens: make(chan *fakeCapture, 16)}
}

func (n *fakeNet) open(iface string, ranges []listener.PortRange) (capture, error) {
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
	ranges := []listener.PortRange{{Proto: 6, Lo: 10000, Hi: 10999}}
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
	newRanges := []listener.PortRange{{Proto: 17, Lo: 40000, Hi: 40999}}
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

// TestFeedBuffered: a feed of one capture tells whether a frame is ready
// (so the run loop batches); a feed of several never does.
func TestFeedBuffered(t *testing.T) {
	n := newFakeNet()
	f, err := openFeed([]string{"eth0"}, nil, n.open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := n.waitOpen(t)
	if f.Buffered() {
		t.Error("Buffered with no frame")
	}
	c.frames <- frame(1)
	if !f.Buffered() {
		t.Error("not Buffered with a frame ready")
	}
	if fr, err := f.ReadFrame(); err != nil || fr.Data[0] != 1 {
		t.Fatalf("ReadFrame = %v, %v; want frame 1", fr, err)
	}
	if f.Buffered() {
		t.Error("Buffered after the only frame was read")
	}

	f2, err := openFeed([]string{"eth0", "eth1"}, nil, n.open, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	n.waitOpen(t).frames <- frame(2)
	if f2.Buffered() {
		t.Error("a feed of two interfaces reports Buffered")
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
