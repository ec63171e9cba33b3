package listener

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"unsafe"

	"github.com/tknock/tknock/totpseq"
)

// The per-source table: a fixed array of entries, an open-addressing hash
// index of its own (linear probing, deletion by backward shift, so no
// tombstones accumulate under churn and nothing is ever reallocated), a
// free list, and two intrusive LRU lists: sources that only matched an
// anchor, and sources with at least one candidate past its anchor. A full
// table evicts, in this order: the least recently knocking advanced source
// if none of its candidates can advance any more (dead), else the least
// recently knocking anchor-only source, else the least recently knocking
// advanced source. A spoofed-source flood at anchor ports therefore only
// ever pushes out other anchor-only sources.

// maxAdvanced bounds the candidates past their anchor that one source
// tracks. Two candidates advance together only when their anchors and
// second ports coincide (two users sharing both, about 1 in the range size
// per pair): beyond the bound, a candidate that can open replaces one that
// can only report a clock skew, else the new one is not tracked (counted
// in Stats.Overflows).
const maxAdvanced = 2

// sourceKey identifies a tracked source: its address and knock protocol.
// The address is held as two words (not a [16]byte) so that copying and
// comparing keys are aligned word moves.
type sourceKey struct {
	hi, lo uint64 // As16 of the (unmapped) address, big-endian halves
	proto  totpseq.Proto
	v4     bool
}

// newSourceKey returns the key of src (unmapped, no zone) and proto.
func newSourceKey(src netip.Addr, proto totpseq.Proto) sourceKey {
	b := src.As16()
	return sourceKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), proto: proto, v4: src.Is4()}
}

// addr returns the source address of k.
func (k *sourceKey) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	a := netip.AddrFrom16(b)
	if k.v4 {
		a = a.Unmap()
	}
	return a
}

// candidate is one (user, service, window) tracked for a source past its
// anchor, with the ports it expects.
type candidate struct {
	window      int64
	start, last int64 // Unix nanoseconds of its first and latest matched knock
	slot        uint32
	anchor      uint16
	step        uint8 // ports matched so far, 2..length-1 while tracked
	skewOnly    bool  // started outside the skew: completes as a ClockSkew
	bound       [totpseq.MaxLength - 1]uint16
}

// lastPort is the port the candidate matched last (rule 3).
func (c *candidate) lastPort() uint16 {
	if c.step == 1 {
		return c.anchor
	}
	return c.bound[c.step-2]
}

// nextPort is the port the candidate expects next (rule 2).
func (c *candidate) nextPort() uint16 { return c.bound[c.step-1] }

// LRU lists of the source table.
const (
	listAnchor   = 0 // sources that only matched an anchor
	listAdvanced = 1 // sources with at least one candidate past its anchor
	listFree     = 2
)

// tracked is the state of one source.
type tracked struct {
	key   sourceKey
	list  uint8
	nadv  uint8
	gport uint16 // the anchor port that started its anchor-only candidates; 0: none
	// ggen is the generation of the anchor table gport matched in, or 0
	// when the match was made outside the table's interval.
	ggen       uint32
	prev, next int32
	h          uint32 // hash of key
	gtime      int64  // Unix nanoseconds of the gport knock
	expires    int64  // after this, no candidate of the source can advance (rule 5)
}

// advSet holds the candidates of a source past their anchor, adv[:nadv].
// They live apart from the entries so that the entries, which every knock
// from a new source touches, take less cache.
type advSet [maxAdvanced]candidate

// hslot is one slot of the hash index: the low 32 bits of the key's hash
// (both its home slot and a tag) and the entry index plus one (0: empty).
type hslot struct {
	h   uint32
	idx int32
}

type lruList struct{ head, tail int32 }

// sourceTable holds the tracked sources. Owned by the goroutine that calls
// Tracker.Knock.
type sourceTable struct {
	ents  []tracked
	adv   []advSet // per entry
	slots []hslot
	mask  uint32
	seed  [4]uint64
	free  int32
	lists [2]lruList
	n     int
}

// MaxTableBytes bounds the default capacity: the per-source table takes at
// most this much memory.
const MaxTableBytes = 64 << 20

// DefaultCapacity is the default number of tracked sources: as many as fit
// in MaxTableBytes.
var DefaultCapacity = defaultCapacity()

func defaultCapacity() int {
	// The largest capacity whose entries and index fit.
	lo, hi := 1, MaxTableBytes/entryBytes
	for lo < hi {
		m := (lo + hi + 1) / 2
		if tableBytes(m) <= MaxTableBytes {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return lo
}

// slotsFor returns the hash index size for capacity n: a power of two with
// a load factor of at most 3/4. (A load factor of 1/2 probes fewer slots
// but, measured with a full default-capacity table, is slower: the larger
// index fits the cache worse.)
func slotsFor(n int) int {
	s := 8
	for s*3/4 < n {
		s *= 2
	}
	return s
}

// tableBytes is the memory of a table of capacity n.
func tableBytes(n int) int {
	return n*entryBytes + slotsFor(n)*int(unsafe.Sizeof(hslot{}))
}

// entryBytes is the memory of one entry and its candidates.
const entryBytes = int(unsafe.Sizeof(tracked{}) + unsafe.Sizeof(advSet{}))

func newSourceTable(capacity int) sourceTable {
	t := sourceTable{
		ents:  make([]tracked, capacity),
		adv:   make([]advSet, capacity),
		slots: make([]hslot, slotsFor(capacity)),
		lists: [2]lruList{{-1, -1}, {-1, -1}},
	}
	t.mask = uint32(len(t.slots) - 1)
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range t.seed {
		t.seed[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	for i := range t.ents {
		t.ents[i].list = listFree
		t.ents[i].next = int32(i + 1)
	}
	t.ents[capacity-1].next = -1
	return t
}

// mix is the 64x64->128 multiply-fold of wyhash.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash of k under the table's random seed, so that spoofed addresses
// cannot be chosen to collide.
func (t *sourceTable) hash(k *sourceKey) uint32 {
	a, b := k.hi, k.lo
	x := uint64(k.proto) << 1
	if k.v4 {
		x |= 1
	}
	h := mix(a^t.seed[0], b^t.seed[1])
	return uint32(mix(h^t.seed[2], x^t.seed[3]))
}

// lookup returns the entry of k, or -1.
func (t *sourceTable) lookup(k *sourceKey, h uint32) int32 {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s.idx == 0 {
			return -1
		}
		if s.h == h && t.ents[s.idx-1].key == *k {
			return s.idx - 1
		}
	}
}

// insert adds k, which is not in the table, as an anchor-only source at
// the front of its list, evicting one source first when the table is
// full. now (Unix nanoseconds) decides whether a source is dead. It
// reports whether it evicted.
func (t *sourceTable) insert(k *sourceKey, h uint32, now int64) (int32, bool) {
	evicted := false
	if t.free < 0 {
		t.remove(t.victim(now))
		evicted = true
	}
	e := t.free
	ent := &t.ents[e]
	t.free = ent.next
	// Only the fields a new source needs: the candidates past their
	// anchor are not read while nadv is 0.
	ent.key, ent.h, ent.list, ent.nadv, ent.gport, ent.ggen, ent.gtime, ent.expires = *k, h, listFree, 0, 0, 0, 0, 0
	i := h & t.mask
	for t.slots[i].idx != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = hslot{h: h, idx: e + 1}
	t.n++
	t.link(e, listAnchor)
	return e, evicted
}

// victim chooses the source to evict from a full table.
func (t *sourceTable) victim(now int64) int32 {
	adv := t.lists[listAdvanced].tail
	if adv >= 0 && t.ents[adv].expires < now {
		return adv
	}
	if a := t.lists[listAnchor].tail; a >= 0 {
		return a
	}
	return adv
}

// remove deletes entry e from the index and its list and frees it.
func (t *sourceTable) remove(e int32) {
	ent := &t.ents[e]
	t.unlink(e)
	i := ent.h & t.mask
	for t.slots[i].idx != e+1 {
		i = (i + 1) & t.mask
	}
	// Backward-shift deletion: move later slots of the probe run into the
	// hole when their home slot allows it.
	for j := i; ; {
		j = (j + 1) & t.mask
		s := t.slots[j]
		if s.idx == 0 {
			break
		}
		home := s.h & t.mask
		// s may move to i if its home is not in the cyclic range (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = hslot{}
	ent.list = listFree
	ent.next = t.free
	t.free = e
	t.n--
}

// link puts e at the front of list l.
func (t *sourceTable) link(e int32, l uint8) {
	ent := &t.ents[e]
	ls := &t.lists[l]
	ent.list, ent.prev, ent.next = l, -1, ls.head
	if ls.head >= 0 {
		t.ents[ls.head].prev = e
	} else {
		ls.tail = e
	}
	ls.head = e
}

// unlink takes e out of its list.
func (t *sourceTable) unlink(e int32) {
	ent := &t.ents[e]
	if ent.list == listFree {
		return
	}
	ls := &t.lists[ent.list]
	if ent.prev >= 0 {
		t.ents[ent.prev].next = ent.next
	} else {
		ls.head = ent.next
	}
	if ent.next >= 0 {
		t.ents[ent.next].prev = ent.prev
	} else {
		ls.tail = ent.prev
	}
	ent.list = listFree
}

// touch moves e to the front of list l.
func (t *sourceTable) touch(e int32, l uint8) {
	if t.ents[e].list == l && t.lists[l].head == e {
		return
	}
	t.unlink(e)
	t.link(e, l)
}
