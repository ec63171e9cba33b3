package listener

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tknock/tknock/totpseq"
)

func trkKey(i int) sourceKey {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return newSourceKey(a, totpseq.TCP)
}

// trkHasher is a fixed hasher, so that the tests that depend on where
// sources land are the same at every run.
var trkHasher = hasher{seed: [8]uint64{
	0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb, 0x2545f4914f6cdd1d,
	0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3, 0x589965cc75374cc3,
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
		if kb, _, _ := s.where(trkHasher.hash(&k)); kb == b {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestAnchorStoreEviction pins the policy of a full bucket: an empty way
// first, else the way stamped longest ago (so a dead record before a live
// one); sources of other buckets never evict.
func TestAnchorStoreEviction(t *testing.T) {
	s := newAnchorStore(8, 4)
	ns := trkAt(trkMid).UnixNano()
	const ms = int64(time.Millisecond)
	add := func(k sourceKey, at int64) bool {
		b, tag, fp := s.where(trkHasher.hash(&k))
		if w, _, _ := s.find(b, tag, fp, at); w >= 0 {
			t.Fatalf("%v: already held", k.addr())
		}
		return s.insert(b, tag, fp, 10000, at, at)
	}
	held := func(k sourceKey) bool {
		b, tag, fp := s.where(trkHasher.hash(&k))
		w, _, _ := s.find(b, tag, fp, ns)
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
		if b, _, _ := s.where(trkHasher.hash(&k)); b != 3 {
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
	b, tag, fp := s.where(trkHasher.hash(&ks[1]))
	w, _, _ := s.find(b, tag, fp, ns)
	s.set(b, w, tag, fp, 10001, ns+60*ms, ns+60*ms)
	if !add(ks[5], ns+70*ms) || held(ks[2]) || !held(ks[1]) || !held(ks[3]) {
		t.Errorf("a sixth source: want the oldest (2) evicted, 1 (knocked again) kept")
	}
}

// TestAnchorStoreSweep: a sweep frees the records past the gap and keeps
// the others; after a pause longer than the gap, it frees all.
func TestAnchorStoreSweep(t *testing.T) {
	s := newAnchorStore(64, 16)
	ns := trkAt(trkMid).UnixNano()
	gap := int64(3 * time.Second)
	for i := range 500 {
		k := trkKey(i)
		b, tag, fp := s.where(trkHasher.hash(&k))
		at := ns + int64(i)*int64(10*time.Millisecond) // 0 .. 5 s
		s.insert(b, tag, fp, 10000, at, at)
	}
	before := s.n
	now := ns + int64(6*time.Second)
	s.sweep(now, gap)
	kept := 0
	for i := range 500 {
		k := trkKey(i)
		b, tag, fp := s.where(trkHasher.hash(&k))
		at := ns + int64(i)*int64(10*time.Millisecond)
		if w, _, _ := s.find(b, tag, fp, now); w >= 0 {
			kept++
			if now-at > gap+2<<stampShift {
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
	for _, c := range []int{2, 3, 16, 17, 18, 100, 1000, 10_000, 327_680, DefaultCapacity, MaxCapacity} {
		nb, ways, adv := capacities(c)
		got := nb*ways + adv
		if nb&(nb-1) != 0 || ways < 1 || ways > bucketWays || adv < 1 || got > c || got < c*7/8 {
			t.Errorf("capacities(%d) = %d buckets of %d ways and %d advanced: %d in all", c, nb, ways, adv, got)
		}
	}
	if nb, ways, adv := capacities(DefaultCapacity); nb != 1<<16 || ways != 15 || adv != 1<<16 {
		t.Errorf("default: %d buckets of %d ways, %d advanced", nb, ways, adv)
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

// TestAnchorStoreDeferredWrites: while deferring, a record write waits for
// flush; claim on its bucket flushes it, claim on another bucket does not;
// and so on through more generations of marks than a uint8 counts.
func TestAnchorStoreDeferredWrites(t *testing.T) {
	s := newAnchorStore(1<<13, 4) // more buckets than marks: b and b+4096 share one
	for g := range 600 {
		b := (g * 97) % (1 << 13)
		other := (b + 1) % (1 << 13)
		s.deferring = true
		s.put(b, 0, -1, 1, uint64(g+1), uint16(g+1), int64(g), int64(g))
		if s.npend != 1 {
			t.Fatalf("generation %d: %d writes pending, want 1", g, s.npend)
		}
		s.claim(other)
		if s.npend != 1 {
			t.Fatalf("generation %d: claim of bucket %d flushed a write to bucket %d", g, other, b)
		}
		s.claim(b)
		if s.npend != 0 || s.rec(b, 0).port() != uint16(g+1) {
			t.Fatalf("generation %d: claim of bucket %d left its write pending (record port %d)", g, b, s.rec(b, 0).port())
		}
		s.deferring = false
		s.free(b, 0)
	}
}
