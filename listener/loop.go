package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// When src is a BatchSource, the frames it has ready are decoded and
// given to the tracker as one batch.
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

	// Frames are decoded as they are read (a frame's data is valid until
	// the next read) into a batch of knocks, while a BatchSource has more
	// ready; the batch goes to the tracker as soon as none is, so a lone
	// knock is handled at once.
	bs, _ := src.(BatchSource)
	var (
		ks [maxBatch]Knock
		v  verdicts
	)
	for {
		n := 0
		f, err := src.ReadFrame()
		for err == nil {
			vd := dec.decode(f, &ks[n])
			v[vd]++
			if vd == isKnock {
				n++
			}
			if n == len(ks) || bs == nil || !bs.Buffered() {
				break
			}
			f, err = src.ReadFrame()
		}
		dec.add(&v)
		if n > 0 {
			tr.knockBatch(ks[:n])
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, ErrClosed) {
				return nil
			}
			return fmt.Errorf("listener: read frame: %w", err)
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
		b.mu.Lock()
		tab := b.buildLocked(next)
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
