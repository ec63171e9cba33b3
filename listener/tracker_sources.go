package listener

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"
	"unsafe"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// Per-source state lives in two stores, and a source is in at most one.
//
// The anchor store holds the sources that have only matched an anchor
// (rule 1): nearly every source of a flood, spoofed or not, and nearly
// every source a port scan creates. It is set-associative: a keyed hash of
// the source (a random key per process, so spoofed addresses cannot be
// chosen to land in one bucket) picks a bucket, one cache line of 8 ways,
// and each way is the whole record of a source in one word: a 23-bit tag
// from the same hash, the anchor port and the anchor knock's capture time
// to 8 µs. A knock therefore reads and writes one cache line,
// the one the batch's first pass loads ahead. A full bucket evicts within
// itself: an empty way, else the way whose anchor knock is the oldest (so a
// dead one before a live one: a record is dead once GapMax has passed
// since its knock). A record is therefore pushed out only when as many
// newer sources as the bucket has ways land in its bucket: under a flood
// of F new sources between a client's first and second knock, each bucket
// receives F/buckets of them on average, and the client's anchor survives
// unless its own bucket received a full set (with the default capacity,
// 253 952 buckets of 8 ways: a flood of 250 000 sources in that time, 10
// million packets per second for 25 ms between knocks, evicts it with a
// probability of about 1e-5; the client waits 1 ms after its anchor, and
// sends it again in each of its rounds).
//
// A tag is not the whole source: two sources of one bucket share a tag
// with a probability of 2^-22 per pair, and the later one then finds the
// other's record as its own. That costs at most that record (the rules
// run on it with the later source's address, whose bound ports no one
// else can know, and restart it at an anchor or drop it), never an
// opening; for a client, under a flood that keeps its bucket full, about 1
// knock in 600 000.
//
// The advanced store holds the sources with a candidate past its anchor:
// they need a bound port derived for their own address, so a flood cannot
// make many of them, and no anchor-only source can evict one. It is a
// fixed array with an open-addressing index (linear probing, deletion by
// backward shift) and one LRU list; when full, the source that knocked
// longest ago is evicted. A source moves to it when a candidate advances
// and back to the anchor store when it has no such candidate left but a
// new anchor.

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
	proto  inet.Proto
	v4     bool
}

// newSourceKey returns the key of src (unmapped, no zone) and proto.
func newSourceKey(src netip.Addr, proto inet.Proto) sourceKey {
	if src.Is4() {
		// As16 of an IPv4 address, without going through memory: the
		// compiler copies As16's array with wide loads of its narrow
		// stores, which wait for every store before them to complete
		// (the previous batch's state writes, which can miss the cache).
		a := src.As4()
		return sourceKey{lo: 0xffff<<32 | uint64(binary.BigEndian.Uint32(a[:])), proto: proto, v4: true}
	}
	b := src.As16()
	return sourceKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), proto: proto}
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
// anchor, with the ports it expects. Its bound ports match in any order
// (PROTOCOL.md section 3, rule 2): seen has bit i set once bound[i]
// matched.
type candidate struct {
	window      int64
	start, last int64 // Unix nanoseconds of its first and latest matched knock
	slot        uint32
	anchor      uint16
	step        uint8 // ports matched so far, 2..length-1 while tracked
	skewOnly    bool  // started outside the skew: completes as a ClockSkew
	bound       [totpseq.MaxLength - 1]uint16
	seen        uint16 // bit i: bound[i] matched
}

// match looks port up among the candidate's n bound ports: it returns the
// port's index, or -1, and whether the port was matched before (rule 3;
// the anchor counts as matched).
func (c *candidate) match(port uint16, n int) (i int, matched bool) {
	for i, b := range c.bound[:n] {
		if b == port {
			return i, c.seen>>i&1 != 0
		}
	}
	return -1, port == c.anchor
}

// tracked is the state of one source, as the rules see it. In the
// advanced store it is the entry itself; a record of the anchor store is
// unpacked into one (gport and gtime, nadv 0) while a knock is applied.
type tracked struct {
	key        sourceKey
	used       bool
	nadv       uint8
	gport      uint16 // the anchor port that started its anchor-only candidates; 0: none
	prev, next int32  // LRU list, or the free list
	h          uint32 // hash of key, as the index has it
	gtime      int64  // Unix nanoseconds of the gport knock
}

// advSet holds the candidates of a source past their anchor, adv[:nadv].
// They live apart from the entries so that the index walk touches less
// memory.
type advSet [maxAdvanced]candidate

// removeAdv removes candidate j, keeping the order of the others.
func (ent *tracked) removeAdv(adv *advSet, j int) {
	copy(adv[j:ent.nadv], adv[j+1:ent.nadv])
	ent.nadv--
}

// keyHash is what the stores need of a key: h, a keyed 64-bit hash (the
// advanced store's index takes its low 32 bits; the anchor store its low
// 32 bits for the bucket and its top 23 bits as the tag).
type keyHash struct{ h uint64 }

// hasher holds the random key of the hashes.
type hasher struct{ seed [4]uint64 }

func newHasher() hasher {
	var h hasher
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range h.seed {
		h.seed[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return h
}

// mix is the 64x64->128 multiply-fold of wyhash.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash returns k's hashes.
func (hs *hasher) hash(k *sourceKey) keyHash {
	x := uint64(k.proto) << 1
	if k.v4 {
		x |= 1
	}
	s := &hs.seed
	return keyHash{h: mix(mix(k.hi^s[0], k.lo^s[1])^s[2], x^s[3])}
}

// The anchor store.

// bucketWays is the number of ways of a bucket: one cache line of 64-bit
// ways.
const bucketWays = 8

// A way is tag<<tagShift | port<<portShift | time, 0 when free (tags are
// odd). Its time is the anchor knock's capture time in units of timeUnit,
// the low timeBits bits: 8 µs divides a millisecond, so the time a way
// gives back (wayTime, floored to 8 µs) is in the same window, and the
// same millisecond, as the knock's; rule 5's limits are then applied up
// to 8 µs early. Times are told apart from the capture time of the knock
// being applied, as signed timeBits-bit differences: right up to 2^24
// units (134 s) either way. Sweeps keep every way younger than that: every
// sweepEvery of capture time the ways dead for sure are freed (their age
// is past MaxGap), and when no knock came for longer than GapMax every
// way is dead and the store is emptied.
const (
	tagShift   = 41
	portShift  = 25
	timeBits   = 25
	timeMask   = 1<<timeBits - 1
	timeUnit   = int64(8 * time.Microsecond)
	sweepEvery = int64(8 * time.Second)
)

// bucket is one bucket's ways.
type bucket [bucketWays]uint64

// ticks returns Unix nanoseconds ns (>= 0) as a way's time.
func ticks(ns int64) uint64 { return uint64(ns/timeUnit) & timeMask }

// wayAge returns how long before now, a way's time, the time of way e
// is, in units of timeUnit; 0 for a time after now (capture times
// slightly out of order).
func wayAge(e, now uint64) int64 {
	return max(0, int64((now-e)<<(64-timeBits))>>(64-timeBits))
}

// wayPort returns the anchor port of way e.
func wayPort(e uint64) uint16 { return uint16(e >> portShift) }

// wayTime returns the capture time of way e's anchor knock in Unix
// nanoseconds, floored to timeUnit, told apart with now (Unix nanoseconds
// of the knock being applied).
func wayTime(e uint64, now int64) int64 {
	u := now / timeUnit
	d := int64((uint64(u)-e)<<(64-timeBits)) >> (64 - timeBits)
	return (u - d) * timeUnit
}

// anchorStore holds the anchor-only sources. Owned by the goroutine that
// calls Tracker.Knock.
type anchorStore struct {
	buckets []bucket
	ways    int   // ways used per bucket, 1..bucketWays
	n       int   // used ways
	swept   int64 // capture time of the latest sweep
	latest  int64 // the latest capture time a way was written at
}

func newAnchorStore(nb, ways int) anchorStore {
	return anchorStore{
		buckets: largeSlice[bucket](nb),
		ways:    ways,
	}
}

// capacity is the number of sources the store holds at most.
func (s *anchorStore) capacity() int { return len(s.buckets) * s.ways }

// where returns the bucket and tag of a key hash: the bucket from the low
// 32 bits (multiplied into the bucket count, which need not be a power of
// two), the tag from the top 23.
func (s *anchorStore) where(kh keyHash) (b int, tag uint64) {
	return int(uint64(uint32(kh.h)) * uint64(len(s.buckets)) >> 32), kh.h>>tagShift | 1
}

// touch reads the cache line of kh's bucket, so that a later access finds
// it in the cache, and returns a word of it for the caller to keep.
func (s *anchorStore) touch(kh keyHash) uint32 {
	b, _ := s.where(kh)
	return uint32(s.buckets[b][0])
}

// find returns the way of bucket b that holds tag, or -1 and the way an
// insert at now would take: an empty way, else the way with the oldest
// time (its age, in units of timeUnit, or -1 for an empty way). One pass over
// the bucket serves both.
func (s *anchorStore) find(b int, tag uint64, now int64) (w, victim int, oldest int64) {
	bk := &s.buckets[b]
	u := ticks(now)
	victim, oldest = 0, -1
	empty := false
	for w, e := range bk[:s.ways] {
		if e>>tagShift == tag {
			return w, 0, 0
		}
		if empty {
			continue
		}
		if e == 0 {
			victim, oldest, empty = w, -1, true
			continue
		}
		if a := wayAge(e, u); a > oldest {
			victim, oldest = w, a
		}
	}
	return -1, victim, oldest
}

// way returns way w of bucket b.
func (s *anchorStore) way(b, w int) uint64 { return s.buckets[b][w] }

// insert adds tag to bucket b, which does not hold it, with anchor port at
// gtime; now is the capture time of the knock being applied. It reports
// whether it evicted a record.
func (s *anchorStore) insert(b int, tag uint64, port uint16, gtime, now int64) bool {
	_, victim, oldest := s.find(b, tag, now)
	return s.put(b, victim, oldest, tag, port, gtime, now)
}

// put writes tag to way victim of bucket b, which find chose, and reports
// whether it evicted a record.
func (s *anchorStore) put(b, victim int, oldest int64, tag uint64, port uint16, gtime, now int64) bool {
	evicted := oldest >= 0
	if !evicted {
		s.n++
	}
	s.set(b, victim, tag, port, gtime, now)
	return evicted
}

// set writes way w of bucket b.
func (s *anchorStore) set(b, w int, tag uint64, port uint16, gtime, now int64) {
	s.buckets[b][w] = tag<<tagShift | uint64(port)<<portShift | ticks(gtime)
	s.latest = max(s.latest, now)
}

// free empties way w of bucket b.
func (s *anchorStore) free(b, w int) {
	s.buckets[b][w] = 0
	s.n--
}

// sweep frees the ways dead at now for sure (their time more than gap
// ago), or all of them when nothing was written in the last gap.
func (s *anchorStore) sweep(now, gap int64) {
	s.swept = now
	if s.n == 0 {
		return
	}
	if now-s.latest > gap {
		clear(s.buckets)
		s.n = 0
		return
	}
	u := ticks(now)
	dead := gap/timeUnit + 1 // a way's time is up to a unit older than its knock
	for b := range s.buckets {
		bk := &s.buckets[b]
		for w := range s.ways {
			if e := bk[w]; e != 0 && wayAge(e, u) > dead {
				bk[w] = 0
				s.n--
			}
		}
	}
}

// The advanced store.

// sourceTable holds the advanced sources. Owned by the goroutine that
// calls Tracker.Knock.
type sourceTable struct {
	ents  []tracked
	adv   []advSet // per entry
	slots []hslot
	mask  uint32
	free  int32 // free list of entries used before: -1 when empty
	// fresh is the first entry never used: ents[fresh:] are free too, and
	// untouched, so that the kernel gives them memory only when sources
	// come (the capacity stays a hard cap; an idle daemon stays small).
	fresh      int32
	head, tail int32 // LRU list: head knocked last
	n          int
}

// hslot is one slot of the hash index: the low 32 bits of the key's hash
// (both its home slot and a tag) and the entry index plus one (0: empty).
type hslot struct {
	h   uint32
	idx int32
}

// slotsFor returns the hash index size for capacity n: a power of two with
// a load factor of at most 3/4.
func slotsFor(n int) int {
	s := 8
	for s*3/4 < n {
		s *= 2
	}
	return s
}

func newSourceTable(capacity int) sourceTable {
	t := sourceTable{
		ents:  make([]tracked, capacity),
		adv:   make([]advSet, capacity),
		slots: make([]hslot, slotsFor(capacity)),
		free:  -1,
		head:  -1,
		tail:  -1,
	}
	t.mask = uint32(len(t.slots) - 1)
	return t
}

// touch reads the index slot of h, so that a later lookup finds it in the
// cache, and returns a word of it for the caller to keep.
func (t *sourceTable) touch(h uint32) uint32 { return t.slots[h&t.mask].h }

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

// insert adds k, which is not in the table, at the front of the LRU list,
// evicting the source at its tail first when the table is full. It
// reports whether it evicted. The new entry's state is zero.
func (t *sourceTable) insert(k *sourceKey, h uint32) (int32, bool) {
	evicted := false
	if t.free < 0 && int(t.fresh) == len(t.ents) {
		t.remove(t.tail)
		evicted = true
	}
	var e int32
	if t.free >= 0 {
		e = t.free
		t.free = t.ents[e].next
	} else {
		e = t.fresh
		t.fresh++
	}
	ent := &t.ents[e]
	*ent = tracked{key: *k, h: h, used: true}
	i := h & t.mask
	for t.slots[i].idx != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = hslot{h: h, idx: e + 1}
	t.n++
	t.link(e)
	return e, evicted
}

// remove deletes entry e from the index and the list and frees it.
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
	ent.used = false
	ent.next = t.free
	t.free = e
	t.n--
}

// link puts e at the front of the list.
func (t *sourceTable) link(e int32) {
	ent := &t.ents[e]
	ent.prev, ent.next = -1, t.head
	if t.head >= 0 {
		t.ents[t.head].prev = e
	} else {
		t.tail = e
	}
	t.head = e
}

// unlink takes e out of the list.
func (t *sourceTable) unlink(e int32) {
	ent := &t.ents[e]
	if ent.prev >= 0 {
		t.ents[ent.prev].next = ent.next
	} else {
		t.head = ent.next
	}
	if ent.next >= 0 {
		t.ents[ent.next].prev = ent.prev
	} else {
		t.tail = ent.prev
	}
}

// touchLRU moves e to the front of the list.
func (t *sourceTable) touchLRU(e int32) {
	if t.head == e {
		return
	}
	t.unlink(e)
	t.link(e)
}

// Sizes.

// MaxTableBytes bounds the per-source state of the default capacity.
const MaxTableBytes = 64 << 20

// DefaultCapacity is the default number of tracked sources: 2 097 152, of
// which 65 536 past their anchor (about 27 MiB in all).
const DefaultCapacity = 1 << 21

// MinCapacity is the smallest capacity: one anchor-only and one advanced
// source.
const MinCapacity = 2

// capacities splits a capacity c >= MinCapacity between the stores: a
// thirty-second (at least one) for the advanced sources, the rest,
// rounded down to whole buckets of nb times ways, for the anchor-only
// ones.
func capacities(c int) (nb, ways, advanced int) {
	advanced = max(1, c/32)
	a := c - advanced
	if a < bucketWays {
		return 1, a, advanced
	}
	return a / bucketWays, bucketWays, advanced
}

// tableBytes is the memory of the stores of capacity c.
func tableBytes(c int) int {
	nb, _, advanced := capacities(c)
	return largeBytes(nb*int(unsafe.Sizeof(bucket{}))) +
		advanced*int(unsafe.Sizeof(tracked{})+unsafe.Sizeof(advSet{})) + slotsFor(advanced)*int(unsafe.Sizeof(hslot{}))
}
