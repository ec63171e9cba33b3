package listener

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

func trkKey(i int) sourceKey {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return newSourceKey(a, inet.TCP)
}

// trkHasher is a fixed hasher, so that the tests that depend on where
// sources land are the same at every run.
var trkHasher = hasher{seed: [4]uint64{
	0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb, 0x2545f4914f6cdd1d,
}}

// trkCheckTable verifies the invariants of an advanced store against the
// set of keys it must hold.
func trkCheckTable(t *testing.T, st *sourceTable, want map[sourceKey]bool) {
	t.Helper()
	if st.n != len(want) {
		t.Fatalf("table holds %d sources, want %d", st.n, len(want))
	}
	for k := range want {
		e := st.lookup(&k, uint32(trkHasher.hash(&k).h))
		if e < 0 || st.ents[e].key != k || !st.ents[e].used {
			t.Fatalf("lookup(%v) = %d after the operations", k.addr(), e)
		}
	}
	// Every used slot points at a used entry whose probe run reaches it.
	used := 0
	for i, s := range st.slots {
		if s.idx == 0 {
			continue
		}
		used++
		ent := &st.ents[s.idx-1]
		if !ent.used || uint32(trkHasher.hash(&ent.key).h) != s.h {
			t.Fatalf("slot %d: stale", i)
		}
		for j := s.h & st.mask; j != uint32(i); j = (j + 1) & st.mask {
			if st.slots[j].idx == 0 {
				t.Fatalf("slot %d: an empty slot %d in its probe run", i, j)
			}
		}
	}
	if used != st.n {
		t.Fatalf("%d slots used, %d sources", used, st.n)
	}
	// The list holds every used entry once, linked both ways.
	n := 0
	prev := int32(-1)
	for e := st.head; e >= 0; e = st.ents[e].next {
		if st.ents[e].prev != prev || !st.ents[e].used {
			t.Fatalf("entry %d badly linked", e)
		}
		prev = e
		n++
	}
	if st.tail != prev {
		t.Fatalf("tail %d, want %d", st.tail, prev)
	}
	if n != st.n {
		t.Fatalf("the list holds %d entries, want %d", n, st.n)
	}
}

// TestSourceTableRandom runs random inserts, touches and removals on a
// small, full advanced store (long probe runs that wrap around) against a
// map; a full store evicts the source touched longest ago.
func TestSourceTableRandom(t *testing.T) {
	for _, capacity := range []int{1, 5, 6, 100} {
		st := newSourceTable(capacity)
		want := map[sourceKey]bool{}
		var order []sourceKey // least recently touched first
		moveBack := func(k sourceKey) {
			for i, o := range order {
				if o == k {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
			order = append(order, k)
		}
		rng := rand.New(rand.NewPCG(3, uint64(capacity)))
		for op := range 20000 {
			k := trkKey(rng.IntN(3 * capacity))
			h := uint32(trkHasher.hash(&k).h)
			e := st.lookup(&k, h)
			if (e >= 0) != want[k] {
				t.Fatalf("capacity %d, op %d: lookup = %d, in table %v", capacity, op, e, want[k])
			}
			if e >= 0 {
				if rng.IntN(2) == 0 {
					st.remove(e)
					delete(want, k)
					moveBack(k)
					order = order[:len(order)-1]
				} else {
					st.touchLRU(e)
					moveBack(k)
				}
			} else {
				full := st.n == capacity
				_, evicted := st.insert(&k, h)
				if evicted != full {
					t.Fatalf("capacity %d, op %d: evicted %v, full %v", capacity, op, evicted, full)
				}
				if full {
					delete(want, order[0])
					order = order[1:]
				}
				want[k] = true
				order = append(order, k)
			}
			trkCheckTable(t, &st, want)
		}
	}
}

// trkInBucket returns n keys (from start on) that land in bucket b of s.
func trkInBucket(s *anchorStore, b, n, start int) []sourceKey {
	var ks []sourceKey
	for i := start; len(ks) < n; i++ {
		k := trkKey(i)
		if kb, _ := s.where(trkHasher.hash(&k)); kb == b {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestAnchorStoreEviction pins the policy of a full bucket: an empty way
// first, else the way with the oldest anchor knock (so a dead record
// before a live one); sources of other buckets never evict.
func TestAnchorStoreEviction(t *testing.T) {
	s := newAnchorStore(8, 4)
	ns := trkAt(trkMid).UnixNano()
	const ms = int64(time.Millisecond)
	add := func(k sourceKey, at int64) bool {
		b, tag := s.where(trkHasher.hash(&k))
		if w, _, _ := s.find(b, tag, at); w >= 0 {
			t.Fatalf("%v: already held", k.addr())
		}
		return s.insert(b, tag, 10000, at, at)
	}
	held := func(k sourceKey) bool {
		b, tag := s.where(trkHasher.hash(&k))
		w, _, _ := s.find(b, tag, ns)
		return w >= 0
	}
	ks := trkInBucket(&s, 3, 6, 0)
	for i, k := range ks[:4] {
		if add(k, ns+int64(i)*10*ms) {
			t.Fatalf("key %d evicted from a bucket with a free way", i)
		}
	}
	// Sources of every other bucket: the bucket keeps its four.
	others := 0
	for i := 1000; others < 1000; i++ {
		k := trkKey(i)
		if b, _ := s.where(trkHasher.hash(&k)); b != 3 {
			add(k, ns+40*ms)
			others++
		}
	}
	for i, k := range ks[:4] {
		if !held(k) {
			t.Fatalf("key %d evicted by sources of other buckets", i)
		}
	}
	// The fifth evicts the oldest, the sixth the next oldest.
	if !add(ks[4], ns+50*ms) || held(ks[0]) || !held(ks[1]) {
		t.Errorf("a fifth source: want the oldest (0) evicted, the others kept")
	}
	// Freshen ks[1]: ks[2] is now the oldest.
	b, tag := s.where(trkHasher.hash(&ks[1]))
	w, _, _ := s.find(b, tag, ns)
	s.set(b, w, tag, 10001, ns+60*ms, ns+60*ms)
	if !add(ks[5], ns+70*ms) || held(ks[2]) || !held(ks[1]) || !held(ks[3]) {
		t.Errorf("a sixth source: want the oldest (2) evicted, 1 (knocked again) kept")
	}
}

// TestAnchorStoreSweep: a sweep frees the records past the gap and keeps
// the others; after a pause longer than the gap, it frees all.
func TestAnchorStoreSweep(t *testing.T) {
	s := newAnchorStore(128, 8)
	ns := trkAt(trkMid).UnixNano()
	gap := int64(3 * time.Second)
	for i := range 500 {
		k := trkKey(i)
		b, tag := s.where(trkHasher.hash(&k))
		at := ns + int64(i)*int64(10*time.Millisecond) // 0 .. 5 s
		s.insert(b, tag, 10000, at, at)
	}
	before := s.n
	now := ns + int64(6*time.Second)
	s.sweep(now, gap)
	kept := 0
	for i := range 500 {
		k := trkKey(i)
		b, tag := s.where(trkHasher.hash(&k))
		at := ns + int64(i)*int64(10*time.Millisecond)
		if w, _, _ := s.find(b, tag, now); w >= 0 {
			kept++
			if now-at > gap+timeUnit {
				t.Errorf("key %d (%v old) kept by the sweep", i, time.Duration(now-at))
			}
		} else if now-at <= gap && before == 500 {
			t.Errorf("key %d (%v old, live) freed by the sweep", i, time.Duration(now-at))
		}
	}
	if kept != s.n || kept == 0 || kept == before {
		t.Errorf("%d kept, %d counted, %d before", kept, s.n, before)
	}
	s.sweep(now+gap+1, gap)
	if s.n != 0 {
		t.Errorf("after a pause longer than the gap: %d ways used", s.n)
	}
	for _, bk := range s.buckets {
		if bk != (bucket{}) {
			t.Fatal("a used way after a sweep of everything")
		}
	}
}

// TestCapacities: the split of a capacity between the stores never
// exceeds it, and wastes little.
func TestCapacities(t *testing.T) {
	for _, c := range []int{2, 3, 8, 9, 10, 16, 17, 18, 100, 1000, 10_000, 327_680, DefaultCapacity, MaxCapacity} {
		nb, ways, adv := capacities(c)
		got := nb*ways + adv
		if nb < 1 || ways < 1 || ways > bucketWays || adv < 1 || got > c || got < c-bucketWays {
			t.Errorf("capacities(%d) = %d buckets of %d ways and %d advanced: %d in all", c, nb, ways, adv, got)
		}
	}
	if nb, ways, adv := capacities(DefaultCapacity); nb != 253_952 || ways != 8 || adv != 1<<16 {
		t.Errorf("default: %d buckets of %d ways, %d advanced", nb, ways, adv)
	}
}

// TestAnchorStoreWhere: the buckets of many sources spread evenly over a
// bucket count that is not a power of two, and tags are odd.
func TestAnchorStoreWhere(t *testing.T) {
	s := newAnchorStore(1000, 8)
	counts := make([]int, 1000)
	for i := range 1_000_000 {
		k := trkKey(i)
		b, tag := s.where(trkHasher.hash(&k))
		if b < 0 || b >= 1000 || tag&1 == 0 || tag >= 1<<(64-tagShift) {
			t.Fatalf("key %d: bucket %d, tag %#x", i, b, tag)
		}
		counts[b]++
	}
	lo, hi := slices.Min(counts), slices.Max(counts)
	// 1000 per bucket on average, a standard deviation of about 32.
	if lo < 850 || hi > 1150 {
		t.Errorf("buckets hold %d to %d sources of 1 000 000, want about 1000 each", lo, hi)
	}
}

// TestAnchorStoreWay: a way gives back its port and its time, floored to
// timeUnit, whichever side of the knock being applied it is on,
// up to the range of its time field; and a window boundary stays one.
func TestAnchorStoreWay(t *testing.T) {
	s := newAnchorStore(1, 8)
	base := trkAt(trkMid).UnixNano()
	for _, d := range []time.Duration{0, 1, 7999, 8000, 8001, time.Millisecond, -time.Millisecond, 3 * time.Second, -3 * time.Second,
		MaxGap + time.Duration(sweepEvery), -(MaxGap + time.Duration(sweepEvery)), 130 * time.Second, -130 * time.Second} {
		gtime := base + int64(d)
		s.set(0, 0, 1, 65535, gtime, base)
		e := s.way(0, 0)
		if got, want := wayTime(e, base), gtime/timeUnit*timeUnit; got != want || wayPort(e) != 65535 {
			t.Errorf("knock %v from now: way gives %d, port %d; want %d, 65535", d, got, wayPort(e), want)
		}
		if age, want := wayAge(e, ticks(base)), max(0, -int64(d)/timeUnit); age != want && age != want+1 {
			t.Errorf("knock %v from now: age %d units, want %d", d, age, want)
		}
	}
	// A knock 1 ns before a second boundary stays in the earlier second.
	sec := (base/1e9 + 1) * 1e9
	s.set(0, 0, 1, 1, sec-1, sec)
	if got := wayTime(s.way(0, 0), sec); got >= sec || got < sec-timeUnit {
		t.Errorf("a knock 1 ns before a second: way gives %d ns before it", sec-got)
	}
}

// TestSourceTableMemory: the default capacity fits in MaxTableBytes, and
// the heap agrees with the computed size.
func TestSourceTableMemory(t *testing.T) {
	if b := tableBytes(DefaultCapacity); b > MaxTableBytes {
		t.Errorf("DefaultCapacity %d takes %d bytes; MaxTableBytes is %d", DefaultCapacity, b, MaxTableBytes)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	nb, ways, adv := capacities(DefaultCapacity)
	a, st := newAnchorStore(nb, ways), newSourceTable(adv)
	runtime.GC()
	runtime.ReadMemStats(&after)
	got := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if want := int64(tableBytes(DefaultCapacity)); got > want+1<<20 {
		t.Errorf("the stores of the default capacity take %d bytes of heap, want %d", got, want)
	}
	t.Logf("default capacity %d sources: %d buckets of %d ways, %d advanced; %d bytes in all (heap %d)",
		DefaultCapacity, nb, ways, adv, tableBytes(DefaultCapacity), got)
	runtime.KeepAlive(&a)
	runtime.KeepAlive(&st)
}
