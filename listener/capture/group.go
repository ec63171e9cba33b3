package capture

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
)

// Reader is what a Group needs of the capture of one interface (*Conn in
// production, a fake in tests).
type Reader interface {
	listener.Source
	SetRanges(ranges []inet.Range) error
	Stats() Stats
}

// OpenFunc opens a capture on one interface ("" for all of them) for the
// knock ranges.
type OpenFunc func(iface string, ranges []inet.Range) (Reader, error)

// Reattach backoff: the first retry after reattachMin, doubling up to
// reattachMax.
const (
	reattachMin = 100 * time.Millisecond
	reattachMax = 5 * time.Second
)

// Group is the listener.Source the run loop reads: the frames of every
// configured interface, merged. When a capture fails (the interface went
// down or away), its reader closes it and opens it again, with backoff,
// until it succeeds or the feed is closed, so the run loop never sees the
// failure.
//
// With a single interface (or all of them, "any"), the run loop reads the
// capture directly and reopens it itself. With several, each interface's
// goroutine reads a batch of the frames its capture has ready and hands
// the batch over; the frames' Data stay valid until the run loop has
// taken the whole batch and asks for more: the goroutine does not read its
// capture again before then (it waits for its release), so nothing is
// copied.
type Group struct {
	log     zerolog.Logger
	caps    []*ifaceCapture
	batches chan batch    // from the interface goroutines to the run loop
	done    chan struct{} // closed by Close
	once    sync.Once
	wg      sync.WaitGroup // the interface goroutines

	// Owned by the run loop.
	cur batch             // the batch being handed out, from cur.fs[off] on
	off int               //
	one [1]listener.Frame // ReadFrame's frame with a single interface
}

// batch is a batch of frames of one interface.
type batch struct {
	fs      []listener.Frame
	release chan struct{} // buffered(1): lets the interface goroutine read on
}

// ifaceCapture is the capture of one interface, reopened when it fails.
type ifaceCapture struct {
	name string // "" for all interfaces
	open OpenFunc
	log  zerolog.Logger

	// Owned by the goroutine that reads the interface (next).
	perFrame zerolog.Logger // one debug line per frame, sampled: a flood must not fill the disk
	// backoff is the wait before the next reopen. It grows while reopened
	// captures fail before delivering a frame (a socket bound to a down
	// interface reports ENETDOWN at once), and starts over after a frame.
	backoff time.Duration

	mu     sync.Mutex // guards the fields below
	cur    Reader     // nil while reopening
	ranges []inet.Range
	closed bool
	base   Stats // counters of the captures closed so far
}

func ifaceName(name string) string {
	if name == "" {
		return "any"
	}
	return name
}

// OpenGroup opens a capture on each interface (nil or empty: one on all
// interfaces), failing if any fails: at start a missing interface is an
// error, not something to wait for.
func OpenGroup(ifaces []string, ranges []inet.Range, open OpenFunc, log zerolog.Logger) (*Group, error) {
	if len(ifaces) == 0 {
		ifaces = []string{""}
	}
	f := &Group{
		log:     log,
		batches: make(chan batch),
		done:    make(chan struct{}),
	}
	for _, name := range ifaces {
		c, err := open(name, ranges)
		if err != nil {
			for _, ic := range f.caps {
				ic.cur.Close()
			}
			return nil, fmt.Errorf("capture on interface %s: %w", ifaceName(name), err)
		}
		ilog := log.With().Str("interface", ifaceName(name)).Logger()
		f.caps = append(f.caps, &ifaceCapture{name: name, open: open, log: ilog, perFrame: ilog.Sample(frameSampler()), cur: c, ranges: ranges})
	}
	if len(f.caps) == 1 {
		// One capture: the run loop reads it directly, with no goroutine
		// and no hand-over in between.
		return f, nil
	}
	for _, ic := range f.caps {
		f.wg.Go(func() { f.read(ic) })
	}
	return f, nil
}

// read is the goroutine of one interface, when there are several.
func (f *Group) read(ic *ifaceCapture) {
	release := make(chan struct{}, 1)
	fs := make([]listener.Frame, batchFrames)
	for {
		n, err := f.nextFrames(ic, fs, true)
		if err != nil {
			return // closed
		}
		select {
		case f.batches <- batch{fs: fs[:n], release: release}:
		case <-f.done:
			return
		}
		select {
		case <-release:
		case <-f.done:
			return
		}
	}
}

// batchFrames is how many frames an interface's goroutine reads at once
// at most: as many as the run loop takes.
const batchFrames = 32

// nextFrames stores the next frames of one interface in fs and returns
// how many, reopening its capture when it fails, until the feed is closed
// (listener.ErrClosed, with 0). With batch set and a capture that is a
// listener.BatchSource, it stores every frame the capture has ready, up to len(fs)
// (at least 1); otherwise one. One goroutine at a time calls it for a
// given interface.
func (f *Group) nextFrames(ic *ifaceCapture, fs []listener.Frame, batch bool) (int, error) {
	for {
		ic.mu.Lock()
		c := ic.cur
		ic.mu.Unlock()
		if c == nil {
			return 0, listener.ErrClosed
		}
		var (
			n   int
			err error
		)
		if bc, ok := c.(listener.BatchSource); ok && batch {
			n, err = bc.ReadFrames(fs)
		} else {
			fs[0], err = c.ReadFrame()
			n = 1
		}
		if err != nil {
			if f.isClosed() {
				return 0, listener.ErrClosed
			}
			ic.log.Warn().Err(err).Msg("capture failed; reopening")
			if !f.reopen(ic, c) {
				return 0, listener.ErrClosed
			}
			continue
		}
		ic.backoff = 0
		for _, fr := range fs[:n] {
			ic.perFrame.Debug().Int("bytes", len(fr.Data)).Int("ifindex", fr.Ifindex).Msg("knock frame")
		}
		return n, nil
	}
}

// reopen closes the failed capture old and opens the interface again,
// with backoff, until it succeeds (true) or the feed is closed (false).
func (f *Group) reopen(ic *ifaceCapture, old Reader) bool {
	log, backoff := ic.log, &ic.backoff
	ic.mu.Lock()
	if ic.closed {
		ic.mu.Unlock()
		return false
	}
	// Closed first: a closed capture's counters are final.
	old.Close()
	ic.base = addStats(ic.base, old.Stats())
	ic.cur = nil
	ic.mu.Unlock()

	for attempt := 1; ; attempt++ {
		wait := max(*backoff, reattachMin)
		*backoff = min(2*wait, reattachMax)
		timer := time.NewTimer(wait)
		select {
		case <-f.done:
			timer.Stop()
			return false
		case <-timer.C:
		}
		ic.mu.Lock()
		ranges := ic.ranges
		ic.mu.Unlock()
		c, err := ic.open(ic.name, ranges)
		if err != nil {
			log.Warn().Err(err).Int("attempt", attempt).Str("retry_in", backoff.String()).Msg("capture reopen failed")
			continue
		}
		ic.mu.Lock()
		if ic.closed {
			ic.mu.Unlock()
			c.Close()
			return false
		}
		if !slices.Equal(ranges, ic.ranges) { // a reload came meanwhile
			if err := c.SetRanges(ic.ranges); err != nil {
				log.Error().Err(err).Msg("capture: set knock ranges")
			}
		}
		ic.cur = c
		ic.mu.Unlock()
		log.Info().Int("attempt", attempt).Msg("capture reattached")
		return true
	}
}

func addStats(a, b Stats) Stats {
	return Stats{
		Packets:   a.Packets + b.Packets,
		Drops:     a.Drops + b.Drops,
		Freezes:   a.Freezes + b.Freezes,
		Read:      a.Read + b.Read,
		Express:   a.Express + b.Express,
		Outgoing:  a.Outgoing + b.Outgoing,
		OtherHost: a.OtherHost + b.OtherHost,
	}
}

func (f *Group) isClosed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// ReadFrame returns the next frame of any interface. It returns
// listener.ErrClosed after Close. It must be called from one goroutine
// only (the run loop).
func (f *Group) ReadFrame() (listener.Frame, error) {
	if len(f.caps) == 1 {
		if _, err := f.nextFrames(f.caps[0], f.one[:], false); err != nil {
			return listener.Frame{}, err
		}
		return f.one[0], nil
	}
	if err := f.nextBatch(); err != nil {
		return listener.Frame{}, err
	}
	f.off++
	return f.cur.fs[f.off-1], nil
}

// ReadFrames stores the frames that are ready in fs, at least one (it
// blocks until one is), and returns how many: with a single capture that
// is a listener.BatchSource, every frame it has ready, up to len(fs);
// with several interfaces, the frames of the batch one of them has ready,
// up to len(fs) (the rest come with the next call); otherwise one frame.
// Their Data stays valid until the next ReadFrames or ReadFrame call. It
// returns listener.ErrClosed (and 0) after Close. It must be called from
// one goroutine only (the run loop), like ReadFrame.
func (f *Group) ReadFrames(fs []listener.Frame) (int, error) {
	if len(f.caps) == 1 {
		return f.nextFrames(f.caps[0], fs, true)
	}
	if err := f.nextBatch(); err != nil {
		return 0, err
	}
	n := copy(fs, f.cur.fs[f.off:])
	f.off += n
	return n, nil
}

// nextBatch makes sure, with several interfaces, that the current batch
// has a frame left: when it is used up, it releases its interface's
// goroutine and waits for the next batch of any interface.
func (f *Group) nextBatch() error {
	if f.off < len(f.cur.fs) {
		return nil
	}
	if f.cur.release != nil {
		f.cur.release <- struct{}{}
		f.cur = batch{}
	}
	select {
	case f.cur = <-f.batches:
		f.off = 0
		return nil
	case <-f.done:
		return listener.ErrClosed
	}
}

// SetRanges replaces the knock ranges of every interface's capture (a
// reload). Safe to call from any goroutine.
func (f *Group) SetRanges(ranges []inet.Range) error {
	var errs []error
	for _, ic := range f.caps {
		ic.mu.Lock()
		ic.ranges = ranges
		if ic.cur != nil {
			if err := ic.cur.SetRanges(ranges); err != nil {
				errs = append(errs, err)
			}
		}
		ic.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Stats returns the counters of every capture, summed, the closed ones
// included. Safe to call from any goroutine.
func (f *Group) Stats() Stats {
	var s Stats
	for _, ic := range f.caps {
		ic.mu.Lock()
		s = addStats(s, ic.base)
		if ic.cur != nil {
			s = addStats(s, ic.cur.Stats())
		}
		ic.mu.Unlock()
	}
	return s
}

// Close closes every capture and waits for the interface goroutines to
// end. A pending ReadFrame returns listener.ErrClosed. Safe to call from
// any goroutine, more than once.
func (f *Group) Close() error {
	var errs []error
	f.once.Do(func() {
		close(f.done)
		for _, ic := range f.caps {
			ic.mu.Lock()
			ic.closed = true
			if ic.cur != nil {
				if err := ic.cur.Close(); err != nil {
					errs = append(errs, err)
				}
				ic.base = addStats(ic.base, ic.cur.Stats())
				ic.cur = nil
			}
			ic.mu.Unlock()
		}
		f.wg.Wait()
	})
	return errors.Join(errs...)
}

// frameSampler samples the per-frame debug lines of an interface: 50 lines
// a second, then one in 100, so a flood cannot fill a disk.
func frameSampler() zerolog.Sampler {
	return &zerolog.BurstSampler{Burst: 50, Period: time.Second, NextSampler: &zerolog.BasicSampler{N: 100}}
}
