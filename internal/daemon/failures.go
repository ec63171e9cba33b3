package daemon

import (
	"net/netip"
	"time"

	"github.com/rs/zerolog"
)

// Failed attempts, per source, for fail2ban (deploy/fail2ban).
//
// What the daemon can see of a guess: with the eBPF prefilter, knocks that
// cannot start or continue a sequence never reach it, so a blind scan is
// invisible here (and harmless: it cannot get past an anchor). What reaches
// it is a source that knocked an anchor and then a port that continues none
// of its candidates: the tracker's reset (rule 4), Config.Reset. A client
// knocking its own sequence never causes one, in any of its three rounds,
// and neither does a client whose clock is off (its sequence completes as
// clock_skew, or never starts): issue 20, the filter must not ban those.
//
// A source is reported once it has failed failThreshold attempts within
// failWindow, then at most once per failWindow while it goes on, with the
// count: one line per minute per attacking source, whatever its rate. The
// line names the source and a reason, never a port.
const (
	failThreshold = 10
	failWindow    = time.Minute
	// maxFailSources bounds the table: beyond it, sources whose window
	// has passed are forgotten, and if none has, all are (a spoofed flood
	// cannot be banned by address anyway).
	maxFailSources = 1 << 16
)

// failCount is one source's failed attempts in its current window.
type failCount struct {
	start    time.Time // first failure of the window
	n        int       // failures since start
	reported bool      // a line was written for this window
}

// failWatch counts failed attempts per source. Owned by the goroutine that
// calls Tracker.Knock (the Reset hook).
type failWatch struct {
	log zerolog.Logger
	by  map[netip.Addr]*failCount
}

func newFailWatch(log zerolog.Logger) *failWatch {
	return &failWatch{log: log, by: make(map[netip.Addr]*failCount)}
}

// failed counts a failed attempt of src at capture time at.
func (w *failWatch) failed(src netip.Addr, at time.Time) {
	c, ok := w.by[src]
	if !ok {
		if len(w.by) >= maxFailSources {
			w.prune(at)
		}
		c = &failCount{start: at}
		w.by[src] = c
	}
	if at.Sub(c.start) >= failWindow || at.Before(c.start) {
		*c = failCount{start: at}
	}
	c.n++
	if c.n >= failThreshold && !c.reported {
		c.reported = true
		w.log.Warn().Str("event", "knock_failed").Str("reason", "wrong_knock").Str("src", src.String()).
			Int("attempts", c.n).Str("within", at.Sub(c.start).Round(time.Millisecond).String()).
			Msg("source keeps knocking without completing a sequence")
	}
}

// prune forgets the sources whose window has passed at now, or all of them.
func (w *failWatch) prune(now time.Time) {
	for a, c := range w.by {
		if now.Sub(c.start) >= failWindow {
			delete(w.by, a)
		}
	}
	if len(w.by) >= maxFailSources {
		clear(w.by)
	}
}
