package listener

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/tknock/tknock/totpseq"
)

func trkKey(i int) sourceKey {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return newSourceKey(a, totpseq.TCP)
}

// trkCheckTable verifies the invariants of a source table against the set
// of keys it must hold.
func trkCheckTable(t *testing.T, st *sourceTable, want map[sourceKey]bool) {
	t.Helper()
	if st.n != len(want) {
		t.Fatalf("table holds %d sources, want %d", st.n, len(want))
	}
	for k := range want {
		e := st.lookup(&k, st.hash(&k))
		if e < 0 || st.ents[e].key != k || st.ents[e].list == listFree {
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
		if ent.list == listFree || st.hash(&ent.key) != s.h {
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
	// The lists hold every used entry once, linked both ways.
	n := 0
	for l := range 2 {
		prev := int32(-1)
		for e := st.lists[l].head; e >= 0; e = st.ents[e].next {
			if st.ents[e].prev != prev || st.ents[e].list != uint8(l) {
				t.Fatalf("list %d: entry %d badly linked", l, e)
			}
			prev = e
			n++
		}
		if st.lists[l].tail != prev {
			t.Fatalf("list %d: tail %d, want %d", l, st.lists[l].tail, prev)
		}
	}
	if n != st.n {
		t.Fatalf("lists hold %d entries, want %d", n, st.n)
	}
}

// TestSourceTableRandom runs random inserts and removals on a small, full
// table (long probe runs that wrap around) against a map.
func TestSourceTableRandom(t *testing.T) {
	for _, capacity := range []int{1, 5, 6, 100} {
		st := newSourceTable(capacity)
		want := map[sourceKey]bool{}
		rng := rand.New(rand.NewPCG(3, uint64(capacity)))
		for op := range 20000 {
			k := trkKey(rng.IntN(3 * capacity))
			h := st.hash(&k)
			e := st.lookup(&k, h)
			if (e >= 0) != want[k] {
				t.Fatalf("capacity %d, op %d: lookup = %d, in table %v", capacity, op, e, want[k])
			}
			if e >= 0 {
				if rng.IntN(2) == 0 {
					st.remove(e)
					delete(want, k)
				} else {
					st.touch(e, uint8(rng.IntN(2)))
				}
			} else {
				if st.n == capacity {
					v := st.victim(0)
					delete(want, st.ents[v].key)
				}
				st.insert(&k, h, 0)
				want[k] = true
			}
			trkCheckTable(t, &st, want)
		}
	}
}

// TestSourceTableEviction: anchor-only sources go first, oldest first; a
// dead advanced source goes before them; live advanced sources go last.
func TestSourceTableEviction(t *testing.T) {
	st := newSourceTable(3)
	add := func(i int, list uint8, expires int64) {
		k := trkKey(i)
		e, _ := st.insert(&k, st.hash(&k), 100)
		st.ents[e].expires = expires
		st.touch(e, list)
	}
	victim := func(now int64) int {
		k := st.ents[st.victim(now)].key
		return int(k.addr().As4()[3])
	}
	add(1, listAdvanced, 1000)
	add(2, listAnchor, 1000)
	add(3, listAnchor, 1000)
	if v := victim(100); v != 2 {
		t.Errorf("victim = %d, want 2 (the oldest anchor-only source)", v)
	}
	if v := victim(1001); v != 1 {
		t.Errorf("victim = %d, want 1 (a dead advanced source)", v)
	}
	st = newSourceTable(2)
	add(1, listAdvanced, 1000)
	add(2, listAdvanced, 1000)
	if v := victim(100); v != 1 {
		t.Errorf("victim = %d, want 1 (the oldest advanced source)", v)
	}
}

// TestSourceTableMemory: the default capacity fits in MaxTableBytes, and
// the heap agrees with the computed size.
func TestSourceTableMemory(t *testing.T) {
	if b := tableBytes(DefaultCapacity); b > MaxTableBytes || tableBytes(DefaultCapacity+1) <= MaxTableBytes {
		t.Errorf("DefaultCapacity %d takes %d bytes; MaxTableBytes is %d", DefaultCapacity, b, MaxTableBytes)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := newSourceTable(DefaultCapacity)
	runtime.GC()
	runtime.ReadMemStats(&after)
	got := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if got > MaxTableBytes+1<<20 {
		t.Errorf("a table of the default capacity takes %d bytes of heap, more than %d", got, MaxTableBytes)
	}
	t.Logf("default capacity %d sources, %d bytes per entry, %d bytes in all (heap %d)",
		DefaultCapacity, entryBytes, tableBytes(DefaultCapacity), got)
	runtime.KeepAlive(st)
}
