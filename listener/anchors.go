package listener

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// The anchor table answers rule 1 of PROTOCOL.md section 3 with one array
// look-up: for a knock protocol and port, the candidates (user, service,
// window) whose anchor is that port. It is the compressed-row layout of a
// counting sort over every candidate: with i = port - lo[proto], the
// candidates of (proto, port) are ents[start[proto][i]:start[proto][i+1]],
// the "live" ones (windows within the considered range at the table's
// time) first, up to mid[proto][i], then the "back" ones (older windows,
// kept so a sequence whose anchor matched just before a window boundary
// can still find its candidates after the table was replaced). The index
// covers the ports from the lowest to the highest of the users' ranges of
// each protocol.
//
// A table is valid for the time interval [from, until) in which no user's
// window changes: until is the earliest next window boundary over every
// user's period. Tables are immutable once built; the goroutine that calls
// Tracker.Knock is the only reader.

// protoIndex maps a knock protocol to the table's first index, or -1.
func protoIndex(p inet.Proto) int {
	switch p {
	case inet.TCP:
		return 0
	case inet.UDP:
		return 1
	}
	return -1
}

// anchorEnt is one candidate of the anchor table: an enrollment slot (user,
// service) and its window, as an offset from the slot's window at the
// table's time.
type anchorEnt struct {
	slot uint32
	off  int16
}

// anchorTable maps (proto, port) to the candidates anchored there.
type anchorTable struct {
	gen         uint32 // build number, never 0
	from, until int64  // Unix nanoseconds: the table is valid for knocks in [from, until)
	owner       *anchorBuilder
	took        time.Duration // how long building it took
	base        []int64       // per slot: the user's window at from
	lo          [2]uint16     // per protocol: the first port of the index
	start       [2][]uint32   // per protocol: one more than mid
	mid         [2][]uint32
	ents        []anchorEnt

	// anchor is a bit per protocol and port: whether the port is the
	// anchor of a live candidate (anchored). 16 KiB that stay in the
	// nearest caches, where a flood's random ports would draw start and
	// mid (hundreds of KiB over a wide range) from the far ones.
	anchor [2][1024]uint64
}

// AnchorPorts are the anchor ports of one anchor table: a bit per
// protocol (0 TCP, 1 UDP) and port, for every candidate of the table, live
// or back. From and Until (Unix nanoseconds) are the interval the table
// serves.
type AnchorPorts struct {
	From, Until int64
	Ports       [2][1024]uint64
}

// ports returns the anchor ports of t.
func (t *anchorTable) ports() AnchorPorts {
	a := AnchorPorts{From: t.from, Until: t.until}
	for pi := range 2 {
		for i := range t.mid[pi] {
			if t.start[pi][i+1] > t.start[pi][i] {
				port := int(t.lo[pi]) + i
				a.Ports[pi][port>>6] |= 1 << (port & 63)
			}
		}
	}
	return a
}

// index returns the index of port in the table of proto index pi, or -1.
func (t *anchorTable) index(pi int, port uint16) int {
	i := int(port) - int(t.lo[pi])
	if uint(i) >= uint(len(t.mid[pi])) {
		return -1
	}
	return i
}

// anchored reports whether port is the anchor of a live candidate.
func (t *anchorTable) anchored(pi int, port uint16) bool {
	return t.anchor[pi&1][port>>6]&(1<<(port&63)) != 0
}

// live returns the candidates of (proto index pi, port) whose window is
// within the considered range at any time in [from, until).
func (t *anchorTable) live(pi int, port uint16) []anchorEnt {
	i := t.index(pi, port)
	if i < 0 {
		return nil
	}
	return t.ents[t.start[pi][i]:t.mid[pi][i]]
}

// all returns the live and the back candidates of (pi, port).
func (t *anchorTable) all(pi int, port uint16) []anchorEnt {
	i := t.index(pi, port)
	if i < 0 {
		return nil
	}
	return t.ents[t.start[pi][i]:t.start[pi][i+1]]
}

// window returns the window of candidate e.
func (t *anchorTable) window(e anchorEnt) int64 { return t.base[e.slot] + int64(e.off) }

// tableGen numbers tables across every builder, so a generation identifies
// one table.
var tableGen atomic.Uint32

// anchorBuilder builds anchor tables for one set of users and one window
// range. It caches the anchors it computed (one ring of windows per slot),
// so the table for the next window boundary costs one HMAC per slot whose
// window changed, not one per candidate.
//
// The cache is guarded by mu: the build-ahead goroutine and the goroutine
// that calls Knock may both build. The users and slots are immutable.
type anchorBuilder struct {
	users []userState
	slots []enrollSlot
	d     int // windows considered on each side of the current one: max(skew, skew detection)

	mu      sync.Mutex
	ring    []uint16 // anchors: slot s owns ring[ringOff[s]:ringOff[s+1]], indexed by window mod its length; 0: no anchor
	ringOff []int
	ringLo  []int64 // per slot: first window held in the ring, -1 for none
	lo, n   [2]int  // per protocol: the first port of the users' ranges and the number of ports up to the last
	cntLive [2][]uint32
	cntBack [2][]uint32
	last    atomic.Int64 // nanoseconds the latest build took

	free chan *anchorTable // tables no longer read, for reuse

	publish func(AnchorPorts) // Config.Anchors
}

// userState is one validated enrollment, as the tracker and the builder
// use it. Immutable.
type userState struct {
	name   string
	params totpseq.Params // validated; its slices are private copies
	period int64          // seconds
	back   int            // windows kept behind the live range: ceil(2*GapMax/period)
	first  int            // its first slot; its slots are first..first+len(params.Services)-1
}

// enrollSlot is one (user, service) pair: the unit that has an anchor per
// window.
type enrollSlot struct {
	user    int32
	service string
}

// windowAt returns the window of Unix nanoseconds ns (>= 0) for period
// seconds.
func windowAt(ns, period int64) int64 { return ns / int64(time.Second) / period }

// relevant reports whether a knock of proto to port is a knock for user u:
// its protocol, inside its range and not excluded. A knock that is not
// leaves u's candidates unchanged.
func (u *userState) relevant(proto inet.Proto, port uint16) bool {
	p := &u.params
	if proto != p.Proto || port < p.Range.Lo || port > p.Range.Hi {
		return false
	}
	if len(p.Exclude) == 0 {
		return true
	}
	_, excluded := slices.BinarySearch(p.Exclude, port)
	return !excluded
}

func newAnchorBuilder(users []userState, slots []enrollSlot, d int) *anchorBuilder {
	b := &anchorBuilder{
		users:   users,
		slots:   slots,
		d:       d,
		ringOff: make([]int, len(slots)+1),
		ringLo:  make([]int64, len(slots)),
		free:    make(chan *anchorTable, 2),
	}
	n := 0
	for s, sl := range slots {
		b.ringOff[s] = n
		n += 2*d + 1 + users[sl.user].back
		b.ringLo[s] = -1
	}
	b.ringOff[len(slots)] = n
	b.ring = make([]uint16, n)
	for pi := range 2 {
		lo, hi := 65536, -1
		for i := range users {
			if r := users[i].params.Range; protoIndex(users[i].params.Proto) == pi {
				lo, hi = min(lo, int(r.Lo)), max(hi, int(r.Hi))
			}
		}
		if hi >= lo {
			b.lo[pi], b.n[pi] = lo, hi-lo+1
		}
		b.cntLive[pi] = make([]uint32, b.n[pi])
		b.cntBack[pi] = make([]uint32, b.n[pi])
	}
	return b
}

// recycle hands a table that is no longer read back to its builder.
func (b *anchorBuilder) recycle(t *anchorTable) {
	select {
	case b.free <- t:
	default:
	}
}

// boundary returns the latest window boundary at or before ns (Unix
// nanoseconds) over every user's period, in Unix nanoseconds. Without users
// it returns ns.
func (b *anchorBuilder) boundary(ns int64) int64 {
	from := int64(math.MinInt64)
	for i := range b.users {
		p := b.users[i].period
		from = max(from, windowAt(ns, p)*p*int64(time.Second))
	}
	if from == math.MinInt64 {
		return ns
	}
	return from
}

// next returns the earliest window boundary after ns over every user's
// period, or math.MaxInt64 without users.
func (b *anchorBuilder) next(ns int64) int64 {
	until := int64(math.MaxInt64)
	for i := range b.users {
		p := b.users[i].period
		until = min(until, (windowAt(ns, p)+1)*p*int64(time.Second))
	}
	return until
}

// minParallel is the number of anchors to compute below which a build
// stays on one goroutine.
const minParallel = 2048

// build returns the anchor table for the windows current at ns (Unix
// nanoseconds, >= 0). The table is valid from the latest window boundary
// at or before ns to the next one.
func (b *anchorBuilder) build(ns int64) *anchorTable {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buildLocked(ns, runtime.GOMAXPROCS(0))
}

// buildLocked is build with b.mu held, on at most workers goroutines.
func (b *anchorBuilder) buildLocked(ns int64, workers int) *anchorTable {
	began := time.Now()

	var t *anchorTable
	select {
	case t = <-b.free:
	default:
		t = new(anchorTable)
	}
	t.owner = b
	t.gen = tableGen.Add(1)
	if t.gen == 0 { // 0 marks "no table" in a tracked source
		t.gen = tableGen.Add(1)
	}
	t.from, t.until = b.boundary(ns), b.next(ns)
	t.base = slices.Grow(t.base[:0], len(b.slots))[:len(b.slots)]

	missing := b.refresh(ns)
	if missing >= minParallel && workers > 1 {
		b.deriveParallel(ns, workers)
	} else {
		b.derive(ns, 0, len(b.users))
	}
	b.sort(t, ns)
	if b.publish != nil {
		b.publish(t.ports())
	}
	t.took = time.Since(began)
	b.last.Store(int64(t.took))
	return t
}

// window range of slot s's ring at ns: lo..hi inclusive.
func (b *anchorBuilder) span(u *userState, ns int64) (w, lo, hi int64) {
	w = windowAt(ns, u.period)
	return w, max(0, w-int64(b.d)-int64(u.back)), w + int64(b.d)
}

// refresh counts the anchors that build must compute for ns.
func (b *anchorBuilder) refresh(ns int64) int {
	missing := 0
	for i := range b.users {
		u := &b.users[i]
		_, lo, hi := b.span(u, ns)
		for s := u.first; s < u.first+len(u.params.Services); s++ {
			missing += b.missing(s, lo, hi)
		}
	}
	return missing
}

// missing returns how many windows of lo..hi slot s's ring lacks.
func (b *anchorBuilder) missing(s int, lo, hi int64) int {
	n := int64(b.ringOff[s+1] - b.ringOff[s])
	have := b.ringLo[s]
	if have < 0 {
		return int(hi - lo + 1)
	}
	// Overlap of [lo, hi] with [have, have+n-1].
	ov := min(hi, have+n-1) - max(lo, have) + 1
	return int(hi - lo + 1 - max(0, ov))
}

// derive computes the anchors of users[from:to] that their rings lack at
// ns. It touches only those users' rings, so calls for disjoint user
// ranges may run at the same time. One Deriver, rekeyed from user to user,
// serves the whole call: a Deriver per user was 1.3 KiB of garbage each,
// 130 MiB at every window boundary with 100 000 users, and the heap grew
// by as much before the collector caught up.
func (b *anchorBuilder) derive(ns int64, from, to int) {
	var dv *totpseq.Deriver
	for i := from; i < to; i++ {
		u := &b.users[i]
		_, lo, hi := b.span(u, ns)
		var d *totpseq.Deriver
		for s := u.first; s < u.first+len(u.params.Services); s++ {
			ring := b.ring[b.ringOff[s]:b.ringOff[s+1]]
			n := int64(len(ring))
			have := b.ringLo[s]
			for w := lo; w <= hi; w++ {
				if have >= 0 && w >= have && w < have+n {
					continue // cached: the ring holds w at w mod n
				}
				if d == nil {
					// The parameters were validated when the users were set.
					if dv == nil {
						dv, _ = totpseq.NewDeriver(&u.params)
					} else if dv.Rekey(&u.params) != nil {
						dv = nil
					}
					d = dv
				}
				var a uint16
				if d != nil {
					// An error is an exhausted port stream: no client can
					// knock this window either. 0 marks "no anchor".
					a, _ = d.Anchor(b.slots[s].service, uint64(w))
				}
				ring[w%n] = a
			}
			b.ringLo[s] = lo
		}
	}
}

// deriveParallel runs derive over workers goroutines.
func (b *anchorBuilder) deriveParallel(ns int64, workers int) {
	workers = min(workers, len(b.users))
	var wg sync.WaitGroup
	for w := range workers {
		from, to := w*len(b.users)/workers, (w+1)*len(b.users)/workers
		wg.Go(func() { b.derive(ns, from, to) })
	}
	wg.Wait()
}

// sort fills t's index and entries from the rings at ns.
func (b *anchorBuilder) sort(t *anchorTable, ns int64) {
	for pi := range 2 {
		clear(b.cntLive[pi])
		clear(b.cntBack[pi])
		t.lo[pi] = uint16(b.lo[pi])
		t.start[pi] = slices.Grow(t.start[pi][:0], b.n[pi]+1)[:b.n[pi]+1]
		t.mid[pi] = slices.Grow(t.mid[pi][:0], b.n[pi])[:b.n[pi]]
	}
	total := 0
	b.each(t, ns, func(pi int, port uint16, _ uint32, off int16, live bool) {
		if live {
			b.cntLive[pi][int(port)-b.lo[pi]]++
		} else {
			b.cntBack[pi][int(port)-b.lo[pi]]++
		}
		total++
	})
	var at uint32
	for pi := range 2 {
		for i := range b.n[pi] {
			live, back := b.cntLive[pi][i], b.cntBack[pi][i]
			t.start[pi][i] = at
			t.mid[pi][i] = at + live
			b.cntLive[pi][i] = at // from here on, the next free position
			b.cntBack[pi][i] = at + live
			at += live + back
		}
		t.start[pi][b.n[pi]] = at
		clear(t.anchor[pi][:])
		for i := range b.n[pi] {
			if t.mid[pi][i] > t.start[pi][i] {
				port := b.lo[pi] + i
				t.anchor[pi][port>>6] |= 1 << (port & 63)
			}
		}
	}
	t.ents = slices.Grow(t.ents[:0], total)[:total]
	b.each(t, ns, func(pi int, port uint16, slot uint32, off int16, live bool) {
		c := &b.cntBack[pi][int(port)-b.lo[pi]]
		if live {
			c = &b.cntLive[pi][int(port)-b.lo[pi]]
		}
		t.ents[*c] = anchorEnt{slot: slot, off: off}
		*c++
	})
}

// each calls f for every candidate of the rings at ns, and sets t.base.
func (b *anchorBuilder) each(t *anchorTable, ns int64, f func(pi int, port uint16, slot uint32, off int16, live bool)) {
	for i := range b.users {
		u := &b.users[i]
		pi := protoIndex(u.params.Proto)
		w, lo, hi := b.span(u, ns)
		for s := u.first; s < u.first+len(u.params.Services); s++ {
			t.base[s] = w
			ring := b.ring[b.ringOff[s]:b.ringOff[s+1]]
			n := int64(len(ring))
			for x := lo; x <= hi; x++ {
				a := ring[x%n]
				if a == 0 {
					continue
				}
				off := x - w
				f(pi, a, uint32(s), int16(off), off >= -int64(b.d))
			}
		}
	}
}
