package listener

import (
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/tknock/tknock/totpseq"
)

// Clock skew detection, lazily (issue 15 item 2). A client whose clock is
// off by more than Config.Skew windows, up to Config.SkewDetect, knocks a
// sequence that opens nothing; the tracker reports it as a ClockSkew event
// so that the administrator sees why. The candidates of those windows are
// most of the anchor table (8 of 11 windows under the defaults), and
// deriving their bound ports at every knock after one of their anchors, as
// the candidates that can open are, would make detection most of the
// derivation cost of a spray. So they are not derived as knocks come: a
// source that knocks after an anchor of such candidates is watched
// instead, its next distinct ports recorded, and the candidates are
// derived only when the recorded ports are as many as a sequence of one of
// them has bound ports, that is when a sequence would otherwise complete.
// Then the bound ports are compared with the recorded ones as sets (they
// may come in any order, rule 2). A wrong port among them spoils the watch
// as it would reset a candidate (rule 4): nothing is reported.
//
// At most two watches per source and protocol, of two anchors: a source's
// previous knock may be an anchor of such candidates too (in a small range,
// or with many users, the last port of its previous sequence often is),
// and the watch it starts at the next sequence's first knock must not keep
// that sequence's own from starting at its second. A knock that ended or
// checked a watch starts none: a spray would otherwise keep a watch
// starting at every knock. The watches are at most maxSkewWatches, the
// oldest replaced by a new one when they are full: a flood can push a
// skewed client's watch out, which costs its ClockSkew event, never an
// opening.

// maxSkewWatches bounds the sources watched for a clock skew at once.
const maxSkewWatches = 4096

// watchesPerSource bounds the watches of one source and protocol.
const watchesPerSource = 2

// SkewWatchBytes bounds the memory of the clock skew watches, part of the
// tracker's memory beside MaxTableBytes and DeriverCacheBytes: the watches
// and their index (a map entry of a 24-byte key and two int32s, in groups
// of eight at most 7/8 full, takes less than 64 bytes).
const SkewWatchBytes = maxSkewWatches * (int(unsafe.Sizeof(skewWatch{})) + 64)

// skewWatch is one watch: a source's anchor knock and the distinct ports
// it knocked since.
type skewWatch struct {
	key         sourceKey
	start, last int64  // Unix nanoseconds of the anchor knock and of the latest new port
	lens        uint32 // bit L: a watched candidate has Length L
	pos         int32  // its position in the ring
	anchor      uint16
	n           uint8 // ports recorded
	used        bool
	done        bool // a candidate matched: copies are absorbed until rule 5 ends it
	ports       [totpseq.MaxLength - 1]uint16
}

// watchPair is the index entry of a source: the ring positions of its
// watches, plus one (0: none).
type watchPair [watchesPerSource]int32

// skewWatches holds the watches in a ring, made at the first watch, with
// an index by source. Owned by the goroutine that calls Knock.
type skewWatches struct {
	ring []skewWatch
	idx  map[sourceKey]watchPair
	next int32
	took bool // the knock being processed ended or checked a watch: it starts none
}

// of returns the ring positions of key's watches, plus one (0: none).
func (ws *skewWatches) of(key *sourceKey) watchPair {
	if len(ws.idx) == 0 {
		return watchPair{}
	}
	return ws.idx[*key]
}

// add returns a new watch for key, which has fewer than watchesPerSource,
// replacing the oldest watch when they are full.
func (ws *skewWatches) add(key *sourceKey) *skewWatch {
	if ws.ring == nil {
		ws.ring = make([]skewWatch, maxSkewWatches)
		ws.idx = make(map[sourceKey]watchPair, maxSkewWatches)
	}
	i := ws.next
	ws.next = (i + 1) % int32(len(ws.ring))
	w := &ws.ring[i]
	if w.used {
		ws.remove(w)
	}
	*w = skewWatch{key: *key, pos: i, used: true}
	p := ws.idx[*key]
	for j := range p {
		if p[j] == 0 {
			p[j] = i + 1
			break
		}
	}
	ws.idx[*key] = p
	return w
}

// remove ends watch w.
func (ws *skewWatches) remove(w *skewWatch) {
	i := w.pos + 1
	p := ws.idx[w.key]
	for j := range p {
		if p[j] == i {
			p[j] = 0
		}
	}
	if p == (watchPair{}) {
		delete(ws.idx, w.key)
	} else {
		ws.idx[w.key] = p
	}
	w.used = false
}

// reset ends every watch (a reload: the users may have changed).
func (ws *skewWatches) reset() {
	if len(ws.idx) == 0 {
		return
	}
	clear(ws.idx)
	for i := range ws.ring {
		ws.ring[i].used = false
	}
}

// skewStep applies a knock to its source's watches, if it has any: a copy
// of a recorded port (or of the anchor) is ignored, another port is
// recorded, and when the ports recorded are as many as the bound ports of
// a watched candidate, the candidates of that length are derived and
// compared. It is called before the knock's other rules, for every knock
// while any source is watched.
func (t *Tracker) skewStep(key *sourceKey, port uint16, tab *anchorTable, pi int, src netip.Addr, at time.Time, ns int64) {
	for _, i := range t.skew.of(key) {
		if i == 0 {
			continue
		}
		t.tally.rare = true // any counter may change
		w := &t.skew.ring[i-1]
		if ns-w.last > t.gap || ns-w.start > t.seq {
			t.skew.remove(w) // rule 5
			continue
		}
		if port == w.anchor || slices.Contains(w.ports[:w.n], port) {
			continue // rule 3
		}
		if w.done || int(w.n) == len(w.ports) {
			t.skew.remove(w) // rule 4: a port past the end
			t.skew.took = true
			continue
		}
		w.ports[w.n] = port
		w.n++
		w.last = ns
		// Recorded only, the knock may still start a watch of another
		// anchor; once it checked this one, it starts none.
		if t.skewCheck(w, tab, pi, src, at, ns) {
			t.skew.took = true
		}
	}
}

// skewStart watches the source of key, which knocked port at ns after its
// anchor knock at start, for the candidates at anchor outside the skew
// whose lengths are the bits of lens, and reports whether it did: not when
// the source has watchesPerSource watches already or one of anchor, nor at
// a knock that ended or checked a watch.
func (t *Tracker) skewStart(key *sourceKey, anchor uint16, start int64, port uint16, lens uint32, tab *anchorTable, pi int, src netip.Addr, at time.Time, ns int64) bool {
	if t.skew.took {
		return false
	}
	free := false
	for _, i := range t.skew.of(key) {
		if i == 0 {
			free = true
		} else if t.skew.ring[i-1].anchor == anchor {
			return false
		}
	}
	if !free {
		return false
	}
	w := t.skew.add(key)
	w.anchor, w.start, w.last, w.lens = anchor, start, ns, lens
	w.ports[0], w.n = port, 1
	t.skewCheck(w, tab, pi, src, at, ns)
	return true
}

// skewCheck derives, when w has recorded as many ports as some watched
// candidates have bound ports, those candidates' bound ports for src and
// reports a ClockSkew event for each whose ports are the recorded ones; it
// reports whether it checked. The watch ends when no longer candidate is
// left to complete, unless one matched (it then absorbs copies). The
// derivations are charged to the source's budget; a source that cannot
// afford them loses its watch.
func (t *Tracker) skewCheck(w *skewWatch, tab *anchorTable, pi int, src netip.Addr, at time.Time, ns int64) bool {
	length := int(w.n) + 1
	if w.lens&(1<<length) == 0 {
		return false
	}
	d, skew := int64(t.st.cfg.depth()), int64(t.st.cfg.Skew)
	ents := tab.all(pi, w.anchor)
	watched := func(a anchorEnt) (*userState, bool) {
		u := &t.st.users[t.st.slots[a.slot].user]
		off := tab.window(a) - windowAt(w.start, u.period)
		return u, u.params.Length == length && (off < -skew || off > skew) && off >= -d && off <= d
	}
	need := 0
	for _, a := range ents {
		if _, ok := watched(a); ok {
			need++
		}
	}
	if need > 0 && !t.budget.take(src, need, ns) {
		t.tally.throttled++
		t.skewFailed(w, src, at)
		return true
	}
	var buf [totpseq.MaxLength - 1]uint16
	for _, a := range ents {
		u, ok := watched(a)
		if !ok {
			continue
		}
		sl := &t.st.slots[a.slot]
		dv := t.deriver(sl.user)
		if dv == nil {
			continue
		}
		t.derived++
		bound, err := dv.AppendBound(buf[:0], sl.service, uint64(tab.window(a)), w.anchor, src)
		if err != nil || !sameSet(bound, w.ports[:w.n]) {
			continue
		}
		w.done = true
		c := candidate{window: tab.window(a), start: w.start, last: ns, slot: a.slot, anchor: w.anchor, step: uint8(u.params.Length), skewOnly: true}
		t.complete(&c, src, at, ns)
	}
	if !w.done && w.lens>>(length+1) == 0 {
		t.skewFailed(w, src, at) // no longer candidate: spoiled
	}
	return true
}

// skewFailed ends watch w, whose ports matched none of its candidates: a
// failed attempt, counted and reported as a reset is (rule 4), at the
// knock where the sequence would have completed. Starting the watch
// counted as progress (Tracker.advanceAnchored), so that a skewed client
// is not reported as failing before it could be told apart from one.
func (t *Tracker) skewFailed(w *skewWatch, src netip.Addr, at time.Time) {
	t.skew.remove(w)
	t.tally.resets++
	if f := t.st.cfg.Reset; f != nil {
		f(src, at)
	}
}

// sameSet reports whether a and b, each without repeats, hold the same
// ports.
func sameSet(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}
