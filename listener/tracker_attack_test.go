package listener

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// trkScanUsers share the default range; every sequence has at least three
// ports, so a scan cannot open by chance (two ports in a row would, about
// once per range size squared... per candidate and knock).
func trkScanUsers() []User {
	return []User{
		alice,
		carol,
		heidi,
		grace,
		trkUser("udp", func(p *totpseq.Params) { p.Proto = inet.UDP }),
		trkUser("three", func(p *totpseq.Params) { p.Length = 3; p.Period = 5 }),
	}
}

// TestTrackerScans: an ascending, a descending and a shuffled sweep of the
// whole range from one source, fast and slow (across window boundaries),
// starting at several points of a window, for both protocols, open
// nothing and report nothing.
func TestTrackerScans(t *testing.T) {
	users := trkScanUsers()
	r := totpseq.DefaultRange()
	var ports []uint16
	for p := r.Lo; p <= r.Hi; p++ {
		ports = append(ports, p)
	}
	desc := slices.Clone(ports)
	slices.Reverse(desc)
	shuffled := slices.Clone(ports)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sweeps := map[string][]uint16{"ascending": ports, "descending": desc, "shuffled": shuffled}
	for name, sweep := range sweeps {
		for _, proto := range []inet.Proto{inet.TCP, inet.UDP} {
			for _, spacing := range []time.Duration{time.Microsecond, time.Millisecond} {
				// Start offsets across a window; with a 1 ms spacing a sweep
				// lasts 22.8 s and crosses one or more window boundaries.
				for _, phase := range []time.Duration{0, 10 * time.Second, 30*time.Second - time.Millisecond} {
					for _, window := range []int{-6, 0, 6} {
						t.Run(fmt.Sprintf("%s/%v/%v/%v/%d", name, proto, spacing, phase, window), func(t *testing.T) {
							cfg := DefaultConfig()
							cfg.Capacity = 1024
							tr, rec := trkNew(t, cfg, users...)
							start := trkAt(time.Duration(window)*30*time.Second + phase)
							for _, k := range trkKnocks(trkA, proto, sweep, start, spacing) {
								tr.Knock(k)
							}
							s := tr.Stats()
							if len(rec.events) != 0 || s.Opened != 0 {
								t.Errorf("a sweep gave events %+v", rec.events)
							}
							if s.Started == 0 {
								t.Errorf("the sweep matched no anchor: the test tests nothing")
							}
						})
					}
				}
			}
		}
	}
}

// TestTrackerSweepAfterAnchor: an attacker who saw a client's anchor (it
// does not depend on the source) knocks it, then sweeps the whole range,
// ascending, descending or shuffled, with the anchor again before every
// port or not: the sweep holds every bound port, but with any-order
// matching a port that is no bound port still resets (rule 4), so the
// sweep opens nothing unless the k-1 bound ports of its own address come
// next to one another, as likely as guessing them.
func TestTrackerSweepAfterAnchor(t *testing.T) {
	r := totpseq.DefaultRange()
	var ports []uint16
	for p := r.Lo; p <= r.Hi; p++ {
		ports = append(ports, p)
	}
	desc := slices.Clone(ports)
	slices.Reverse(desc)
	shuffled := slices.Clone(ports)
	rand.New(rand.NewPCG(3, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sweeps := map[string][]uint16{"ascending": ports, "descending": desc, "shuffled": shuffled}
	for _, u := range []User{alice, trkUser("three", func(p *totpseq.Params) { p.Length = 3 })} {
		for name, sweep := range sweeps {
			for _, again := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/anchor-again=%v", u.Name, name, again), func(t *testing.T) {
					cfg := DefaultConfig()
					cfg.Capacity = 1024
					tr, rec := trkNew(t, cfg, u)
					// Every guess looked at: at this pace the derivation
					// budget would refuse most (TestTrackerBudget).
					tr.budget.scale = 1000
					anchor := trkSeq(t, u, "ssh", trkW0, trkA)[0]
					ks := []uint16{anchor}
					for _, p := range sweep {
						if again {
							ks = append(ks, anchor)
						}
						ks = append(ks, p)
					}
					for _, k := range trkKnocks(trkA, inet.TCP, ks, trkAt(trkMid), 10*time.Microsecond) {
						tr.Knock(k)
					}
					s := tr.Stats()
					if len(rec.events) != 0 {
						t.Errorf("a sweep after the anchor gave events %+v", rec.events)
					}
					// With the anchor before every port, each bound port
					// advances a candidate once; without, the anchor starts one.
					if s.Started == 0 || s.Resets == 0 || (again && s.Advanced < uint64(u.Params.Length-1)) {
						t.Errorf("stats %+v: want anchors matched and reset (and with the anchor again, every bound port advanced): the test tests nothing", s)
					}
				})
			}
		}
	}
}

// TestTrackerRandomKnocks: ten million random knocks from one source open
// nothing.
func TestTrackerRandomKnocks(t *testing.T) {
	n := 10_000_000
	if testing.Short() {
		n = 1_000_000
	}
	cfg := DefaultConfig()
	cfg.Capacity = 1024
	tr, rec := trkNew(t, cfg, trkScanUsers()...)
	rng := rand.New(rand.NewPCG(11, 13))
	ns := trkT0.UnixNano()
	k := Knock{Src: trkA6}
	for range n {
		ns += rng.Int64N(int64(2 * time.Millisecond))
		k.Time = time.Unix(0, ns)
		k.Proto = inet.TCP
		if rng.IntN(16) == 0 {
			k.Proto = inet.UDP
		}
		k.Port = uint16(9990 + rng.IntN(32767-9990+10))
		tr.Knock(k)
	}
	s := tr.Stats()
	if len(rec.events) != 0 {
		t.Errorf("random knocks gave events %+v", rec.events)
	}
	if s.Knocks != uint64(n) || s.Started == 0 || s.Resets == 0 {
		t.Errorf("stats %+v: want %d knocks, some anchors matched and reset", s, n)
	}
	t.Logf("%d knocks over %v: %d anchors matched, %d advanced, %d resets", n, time.Duration(ns-trkT0.UnixNano()), s.Started, s.Advanced, s.Resets)
}

// trkLiveAnchors returns the anchor ports of the tracker's current table.
func trkLiveAnchors(tr *Tracker, proto inet.Proto) []uint16 {
	var out []uint16
	tab := tr.st.tab
	pi := protoIndex(proto)
	for p := range 65536 {
		if len(tab.live(pi, uint16(p))) > 0 {
			out = append(out, uint16(p))
		}
	}
	return out
}

// trkSpoofed returns the i-th spoofed source address.
func trkSpoofed(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// TestTrackerFlood: a million spoofed sources knock at anchor ports while
// one real client knocks its sequence: the client opens, and the state
// stays at its capacity.
func TestTrackerFlood(t *testing.T) {
	const (
		capacity = 10_000
		spoofed  = 1_000_000
	)
	cfg := DefaultConfig()
	cfg.Capacity = capacity
	tr, rec := trkNew(t, cfg, alice, carol)
	tr.hash = trkHasher // where sources land does not change between runs
	anchorCap := tr.anc.capacity()
	anchors := trkLiveAnchors(tr, inet.TCP)
	client := trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", trkW0, trkA), time.Time{}, 0)
	// The client's knocks go after these many spoofed ones: between its
	// first and second knock 1000 new sources arrive, about one per
	// bucket (an anchor-only source is evicted when as many newer ones as
	// its bucket has ways land in its bucket: here 8, which happens with
	// a probability of about 3e-6); after its second knock it has
	// advanced and no anchor-only source can push it out.
	at := []int{500_000, 501_000, 800_000, spoofed}
	rng := rand.New(rand.NewPCG(5, 5))
	ns := trkAt(trkMid).UnixNano()
	next := 0
	for i := 0; i <= spoofed; i++ {
		for next < len(at) && at[next] == i {
			if next == len(at)-1 {
				if s := tr.Stats(); s.Tracked != anchorCap+1 {
					t.Errorf("before the last knock: %d sources tracked, want a full anchor store (%d) and the client", s.Tracked, anchorCap)
				}
			}
			k := client[next]
			k.Time = time.Unix(0, ns)
			tr.Knock(k)
			next++
		}
		if i == spoofed {
			break
		}
		ns += 2000 // 500 000 packets per second
		tr.Knock(Knock{Src: trkSpoofed(i), Proto: inet.TCP, Port: anchors[rng.IntN(len(anchors))], Time: time.Unix(0, ns)})
	}
	s := tr.Stats()
	if len(rec.events) != 1 || rec.events[0].Kind != Opened || rec.events[0].Src != trkA {
		t.Errorf("events %+v, want the client's opening only", rec.events)
	}
	// Every anchor-only source inserted (the spoofed ones and the client)
	// was evicted, is still held, or (the client) moved on. A spoofed
	// source whose bucket holds its tag (2^-22 per way: about 2 of this
	// flood) was taken for the source it holds, neither inserted nor
	// evicting.
	if want := uint64(spoofed + 1 - anchorCap - 1); s.Evictions > want || s.Evictions < want-10 {
		t.Errorf("%d evictions, want %d, less a few tags shared", s.Evictions, want)
	}
	// The client stays tracked (its completed candidate absorbs copies
	// of its ports until gap_max).
	if s.Tracked != anchorCap+1 {
		t.Errorf("%d sources tracked after the client completed, want %d and the client", s.Tracked, anchorCap)
	}
	if s.Capacity > capacity || s.Capacity < capacity*7/8 {
		t.Errorf("capacity %d, want at most %d", s.Capacity, capacity)
	}
}

// TestTrackerFloodBetweenFirstKnocks documents the limit of the eviction
// policy: an anchor-only source is evicted when as many new sources as its
// bucket has ways land in its bucket between its first and second knock;
// any number of new sources in the other buckets leave it alone.
func TestTrackerFloodBetweenFirstKnocks(t *testing.T) {
	for _, same := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Capacity = 100
		tr, rec := trkNew(t, cfg, alice)
		tr.hash = trkHasher
		anchors := trkLiveAnchors(tr, inet.TCP)
		s := trkSeq(t, alice, "ssh", trkW0, trkA)
		ns := trkAt(trkMid).UnixNano()
		tr.Knock(Knock{Src: trkA, Proto: inet.TCP, Port: s[0], Time: time.Unix(0, ns)})
		ka := newSourceKey(trkA, inet.TCP)
		home, _ := tr.anc.where(trkHasher.hash(&ka))
		n := 0
		for i := 0; n < tr.anc.ways; i++ {
			src := trkSpoofed(i)
			k := newSourceKey(src, inet.TCP)
			if b, _ := tr.anc.where(trkHasher.hash(&k)); (b == home) != same {
				continue
			}
			if !same && i > 100_000 {
				break
			}
			ns += 1000
			tr.Knock(Knock{Src: src, Proto: inet.TCP, Port: anchors[i%len(anchors)], Time: time.Unix(0, ns)})
			if same {
				n++
			}
		}
		for _, k := range trkKnocks(trkA, inet.TCP, s[1:], time.Unix(0, ns+1000), time.Millisecond) {
			tr.Knock(k)
		}
		switch {
		case same && len(rec.events) != 0:
			t.Errorf("%d new sources in its bucket: events %+v, the client's anchor should have been evicted", tr.anc.ways, rec.events)
		case !same && (len(rec.events) != 1 || rec.events[0].Kind != Opened):
			t.Errorf("new sources in the other buckets only: events %+v, want the client's opening", rec.events)
		}
	}
}

// TestTrackerAllocs: no allocation per knock in steady state.
func TestTrackerAllocs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Capacity = 1000
	tr, _ := trkNew(t, cfg, alice, carol, dave6)
	anchors := trkLiveAnchors(tr, inet.TCP)
	ns := trkAt(trkMid).UnixNano()
	i := 0
	// New sources at anchor ports, the table full: insert and evict.
	flood := func() {
		i++
		ns += 1000
		tr.Knock(Knock{Src: trkSpoofed(i), Proto: inet.TCP, Port: anchors[i%len(anchors)], Time: time.Unix(0, ns)})
	}
	for range 2000 {
		flood()
	}
	if n := testing.AllocsPerRun(10000, flood); n != 0 {
		t.Errorf("a knock from a new source at an anchor port: %v allocations, want 0", n)
	}
	// One source alternating anchor ports and other ports: derivations.
	j := 0
	scan := func() {
		j++
		ns += 1000
		p := uint16(10000 + j%20000)
		if j%2 == 0 {
			p = anchors[j%len(anchors)]
		}
		tr.Knock(Knock{Src: trkA6, Proto: inet.TCP, Port: p, Time: time.Unix(0, ns)})
	}
	for range 1000 {
		scan()
	}
	if n := testing.AllocsPerRun(10000, scan); n != 0 {
		t.Errorf("a knock from a tracked source: %v allocations, want 0", n)
	}
	if s := tr.Stats(); s.Resets == 0 {
		t.Errorf("stats %+v: the scan was never tracked", s)
	}
}

// TestTrackerSharedTag: a source whose bucket and tag are a client's is
// taken for the client in the anchor store, and what that costs is bounded:
// knocking the client's own sequence from there never opens (the bound
// ports are derived for the knocking address), it costs the client at most
// its anchor, and the client opens when it knocks again.
func TestTrackerSharedTag(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Capacity = 9 // one bucket of 8 ways, one advanced source
	tr, rec := trkNew(t, cfg, alice)
	tr.hash = trkHasher
	if nb, ways, _ := capacities(cfg.Capacity); nb != 1 || ways != bucketWays {
		t.Fatalf("capacity %d: %d buckets of %d ways, want one bucket", cfg.Capacity, nb, ways)
	}
	ka := newSourceKey(trkA, inet.TCP)
	_, tagA := tr.anc.where(trkHasher.hash(&ka))
	var twin netip.Addr
	for i := range 1 << 26 { // 2^22 tries on average
		src := trkSpoofed(i)
		k := newSourceKey(src, inet.TCP)
		if _, tag := tr.anc.where(trkHasher.hash(&k)); tag == tagA {
			twin = src
			break
		}
	}
	if !twin.IsValid() {
		t.Fatal("no source of 2^26 shares the client's tag")
	}
	seq := trkSeq(t, alice, "ssh", trkW0, trkA)
	at := trkAt(trkMid)
	// The client's anchor, then its twin's at the same port: taken for
	// the client, the twin adds no record.
	tr.Knock(Knock{Src: trkA, Proto: inet.TCP, Port: seq[0], Time: at})
	tr.Knock(Knock{Src: twin, Proto: inet.TCP, Port: seq[0], Time: at.Add(time.Millisecond)})
	if tr.anc.n != 1 {
		t.Fatalf("the client and a source with its tag hold %d records, want one", tr.anc.n)
	}
	// The twin knocks the rest of the client's sequence on that record.
	for _, k := range trkKnocks(twin, inet.TCP, seq[1:], at.Add(2*time.Millisecond), time.Millisecond) {
		tr.Knock(k)
	}
	// The twin knocks the whole sequence, as a replay from its address.
	for _, k := range trkKnocks(twin, inet.TCP, seq, at.Add(10*time.Millisecond), time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 0 {
		t.Fatalf("a source sharing the client's tag: events %+v, want none", rec.events)
	}
	// The client starts again and gets in.
	for _, k := range trkKnocks(trkA, inet.TCP, seq, at.Add(20*time.Millisecond), time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 1 || rec.events[0].Kind != Opened || rec.events[0].Src != trkA {
		t.Errorf("the client's own sequence after its twin's: events %+v, want its opening", rec.events)
	}
}
