package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
)

// Run reads frames from src, decodes them with dec and gives the knocks to
// tr, until ctx is done or src ends. It is the only goroutine that calls
// tr.Knock; reloads (Tracker.SetUsers, SetConfig) may come from any other
// goroutine and take effect at the next knock.
//
// When ctx is done Run closes src, so that a blocked ReadFrame returns, and
// returns nil. It also returns nil when src is finished (io.EOF, as a fake
// source reports) or closed by someone else (ErrClosed); any other read
// error is returned. Run does not close src otherwise.
//
// When src is a BatchSource, Run reads the frames it has ready (up to
// maxBatch) at once, and gives the knocks among them to the tracker as one
// batch; a plain Source is read and handled one frame at a time.
//
// While it runs, a second goroutine builds the anchor table of the next
// window boundary ahead of time, by tr's wall clock (Config.Now), so that
// crossing a boundary costs the packet path a pointer swap.
func Run(ctx context.Context, src Source, dec *Decoder, tr *Tracker) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { tr.prepare(ctx) })
	stop := context.AfterFunc(ctx, func() { _ = src.Close() })
	defer stop()

	var err error
	if bs, ok := src.(BatchSource); ok {
		err = runBatches(bs, dec, tr)
	} else {
		err = runFrames(src, dec, tr)
	}
	if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, ErrClosed) {
		return nil
	}
	return fmt.Errorf("listener: read frame: %w", err)
}

// runBatches reads batches of frames from src, decodes them and gives the
// knocks of each batch to tr together, until a read fails; it returns the
// read error.
func runBatches(src BatchSource, dec *Decoder, tr *Tracker) error {
	var (
		fs [maxBatch]Frame
		ks [maxBatch]Knock
		v  verdicts
	)
	for {
		// Decoded before the next read: a frame's Data is valid until then.
		n, err := src.ReadFrames(fs[:])
		if err != nil {
			return err
		}
		nk := 0
		for i := range fs[:n] {
			vd := dec.decode(&fs[i], &ks[nk])
			v[vd]++
			if vd == isKnock {
				nk++
			}
		}
		dec.add(&v)
		if nk > 0 {
			tr.knockBatch(ks[:nk])
		}
	}
}

// runFrames reads src one frame at a time and gives each knock to tr at
// once, until a read fails; it returns the read error.
func runFrames(src Source, dec *Decoder, tr *Tracker) error {
	var (
		ks [1]Knock
		v  verdicts
	)
	for {
		f, err := src.ReadFrame()
		if err != nil {
			return err
		}
		vd := dec.decode(&f, &ks[0])
		v[vd]++
		dec.add(&v)
		if vd == isKnock {
			tr.knockBatch(ks[:])
		}
	}
}

// aheadLead is how long before a window boundary the next table is built,
// in addition to twice the duration of the latest build.
const aheadLead = time.Second

// prepare builds the anchor table of each next window boundary ahead of
// time and leaves it for the owner to swap in, until ctx is done.
func (t *Tracker) prepare(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sleep := func(d time.Duration) bool {
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		st := t.latest.Load()
		b := st.b
		now := st.cfg.Now()
		ns, ok := unixNano(now)
		if !ok || len(b.users) == 0 {
			if !sleep(time.Minute) {
				return
			}
			continue
		}
		next := b.next(ns)
		lead := aheadLead + 2*time.Duration(b.last.Load())
		if !sleep(time.Duration(next-ns) - lead) {
			return
		}
		if t.latest.Load() != st {
			continue // reloaded meanwhile: start over with the new users
		}
		// One CPU fewer than there are: the knocks go on meanwhile, and
		// a run loop left without a CPU for the tens of milliseconds a
		// build of 100 000 users takes lets a flood overflow the ring.
		// The build starts early enough for the slower pace.
		b.mu.Lock()
		tab := b.buildLocked(next, max(1, runtime.GOMAXPROCS(0)-1))
		old := t.ahead.Swap(tab)
		b.mu.Unlock()
		t.n.builds.Add(1)
		t.n.buildTime.Store(int64(tab.took))
		if old != nil {
			old.owner.recycle(old)
		}
		// Wait for the boundary, so the next round targets the one after.
		if now := st.cfg.Now(); !sleep(time.Duration(next-now.UnixNano()) + time.Millisecond) {
			return
		}
	}
}
