// Package capturetest has test doubles for the users of package capture:
// Net opens Fake captures fed by the test, and can pretend that interfaces
// are missing. For tests only.
package capturetest

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
)

// Fake is a capture (a capture.Reader) fed by a test: frames sent on Frames
// come out of ReadFrame, an error sent on Errs makes the next ReadFrame
// return it (as when the interface goes down), and Close unblocks
// ReadFrame.
type Fake struct {
	Iface  string              // the interface it was opened on; "" for all
	Frames chan listener.Frame // buffered (64)
	Errs   chan error          // buffered (1)
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex // guards ranges
	ranges []inet.Range
	read   uint64 // frames returned; owned by the ReadFrame caller until Close
}

// NewFake returns a fake capture of iface with ranges.
func NewFake(iface string, ranges []inet.Range) *Fake {
	return &Fake{
		Iface:  iface,
		Frames: make(chan listener.Frame, 64),
		Errs:   make(chan error, 1),
		done:   make(chan struct{}),
		ranges: ranges,
	}
}

func (c *Fake) ReadFrame() (listener.Frame, error) {
	select {
	case <-c.done:
		return listener.Frame{}, listener.ErrClosed
	default:
	}
	select {
	case f := <-c.Frames:
		c.read++
		return f, nil
	case err := <-c.Errs:
		return listener.Frame{}, err
	case <-c.done:
		return listener.Frame{}, listener.ErrClosed
	}
}

func (c *Fake) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// ReadFrames makes the fake a batch source: it waits for a frame as
// ReadFrame does, then takes the frames that are already there, up to
// len(fs). An error comes alone.
func (c *Fake) ReadFrames(fs []listener.Frame) (int, error) {
	f, err := c.ReadFrame()
	if err != nil {
		return 0, err
	}
	fs[0] = f
	n := 1
	for n < len(fs) {
		select {
		case f := <-c.Frames:
			c.read++
			fs[n] = f
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Closed reports whether Close was called.
func (c *Fake) Closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Fake) SetRanges(r []inet.Range) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ranges = r
	return nil
}

// Ranges returns the ranges of the open or the latest SetRanges.
func (c *Fake) Ranges() []inet.Range {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ranges
}

func (c *Fake) Stats() capture.Stats {
	return capture.Stats{Packets: 10, Drops: 1, Express: 4}
}

// Net hands out fake captures and can pretend that interfaces are
// missing.
type Net struct {
	mu      sync.Mutex // guards the fields below
	missing map[string]bool
	opens   chan *Fake         // every successful open, for tests that wait
	pf      *capture.Prefilter // the prefilter the latest open was given

	// Opened are the captures opened so far, oldest first. Read it only
	// while nothing opens.
	Opened []*Fake
}

// NewNet returns a Net where every interface is present.
func NewNet() *Net {
	return &Net{missing: map[string]bool{}, opens: make(chan *Fake, 16)}
}

// OpenWith is Open with a prefilter, as a daemon opens captures. A fake
// capture has no kernel filter: the prefilter, if any, is only noted (see
// Prefilter).
func (n *Net) OpenWith(iface string, ranges []inet.Range, pf *capture.Prefilter) (capture.Reader, error) {
	n.mu.Lock()
	n.pf = pf
	n.mu.Unlock()
	return n.Open(iface, ranges)
}

// Open opens a Fake on iface; it fails with ENODEV while iface is missing.
// It is a capture.OpenFunc.
func (n *Net) Open(iface string, ranges []inet.Range) (capture.Reader, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.missing[iface] {
		return nil, fmt.Errorf("interface %q: %w", iface, syscall.ENODEV)
	}
	c := NewFake(iface, ranges)
	n.Opened = append(n.Opened, c)
	select {
	case n.opens <- c:
	default:
	}
	return c, nil
}

// SetMissing makes the interface missing, or present again.
func (n *Net) SetMissing(iface string, missing bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.missing[iface] = missing
}

// WaitOpen waits up to 10 seconds for the next open and returns its Fake.
func (n *Net) WaitOpen(t *testing.T) *Fake {
	t.Helper()
	select {
	case c := <-n.opens:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no capture opened within 10s")
		return nil
	}
}

// Prefilter returns the prefilter the latest OpenWith was given.
func (n *Net) Prefilter() *capture.Prefilter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pf
}

// Frame returns a one-byte frame, b, to tell frames apart.
func Frame(b byte) listener.Frame { return listener.Frame{Data: []byte{b}} }
