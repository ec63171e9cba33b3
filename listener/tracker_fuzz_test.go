package listener

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// The tracker fuzz target plays random knock streams, mixed with true
// sequences so that completions happen, over a few users with a 64-port
// range, a tiny source table (evictions), a tiny replay record and
// reloads of subsets of the users. It
// checks that the tracker never panics and that every event it reports is
// justified by the knocks: an independent oracle looks the pattern of the
// sequence up in the source's history (rules 1 to 5: the bound ports in
// any order) and checks the event's kind (rule 6).

var trkFuzzSrcs = []netip.Addr{
	trkAddr("192.0.2.1"),
	trkAddr("192.0.2.2"),
	trkAddr("2001:db8::1"),
	trkAddr("2001:db8::2"), // the /64 of 2001:db8::1, shared under v6prefix 64
	trkAddr("2001:db8:1::1"),
}

var trkFuzzDeltas = []time.Duration{
	0, time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 100 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2900 * time.Millisecond, 3 * time.Second, 3*time.Second + 1,
	3100 * time.Millisecond, 5 * time.Second, 7 * time.Second, 30 * time.Second, -time.Millisecond, -2 * time.Second,
}

func trkFuzzUsers() []User {
	small := totpseq.Range{Lo: 10000, Hi: 10063}
	return []User{
		trkUser("two", func(p *totpseq.Params) { p.Range = small; p.Length = 2; p.Period = 5 }),
		trkUser("three", func(p *totpseq.Params) {
			p.Range = small
			p.Length = 3
			p.Period = 7
			p.Services = []string{"ssh", "web"}
		}),
		trkUser("udp", func(p *totpseq.Params) { p.Range = small; p.Length = 2; p.Proto = inet.UDP; p.V6Prefix = 64 }),
	}
}

func trkFuzzConfig() Config {
	return Config{Skew: 1, SkewDetect: 3, GapMax: 3 * time.Second, SeqTimeout: 10 * time.Second, Capacity: 3, ReplayCapacity: 4}
}

// trkOracle judges events against the knocks.
type trkOracle struct {
	t        testing.TB
	users    []User
	cfg      Config
	history  map[sourceKey][]Knock // per source and protocol, every knock, in order
	accepted map[replayKey]bool    // Opened keys; true once the tracker may have forgotten it
}

func (o *trkOracle) key(k Knock) sourceKey {
	return newSourceKey(k.Src.Unmap(), k.Proto)
}

func (o *trkOracle) user(name string) *User {
	for i := range o.users {
		if o.users[i].Name == name {
			return &o.users[i]
		}
	}
	o.t.Fatalf("event for unknown user %q", name)
	return nil
}

// knock records k and ages the accepted keys.
func (o *trkOracle) knock(k Knock) {
	o.history[o.key(k)] = append(o.history[o.key(k)], k)
	for key := range o.accepted {
		p := o.user(key.user).Params.Period
		if int64(totpseq.Window(k.Time, p)) > key.window+MaxSkew {
			o.accepted[key] = true // a full record may purge it from now on
		}
	}
}

func trkRelevant(p *totpseq.Params, k Knock) bool {
	if k.Proto != p.Proto || !p.Range.Contains(k.Port) {
		return false
	}
	_, ex := slices.BinarySearch(p.Exclude, k.Port)
	return !ex
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// check judges event e, reported while processing the last knock of its
// source's history.
func (o *trkOracle) check(e Event) {
	t := o.t
	u := o.user(e.User)
	p := &u.Params
	var proto inet.Proto = p.Proto
	h := o.history[o.key(Knock{Src: e.Src, Proto: proto})]
	if len(h) == 0 || !h[len(h)-1].Time.Equal(e.Time) {
		t.Fatalf("event %+v: not reported at a knock of its source", e)
	}
	seq, err := totpseq.Sequence(p, e.Service, e.Window, e.Src)
	if err != nil {
		t.Fatal(err)
	}
	var r []Knock
	for _, k := range h {
		if trkRelevant(p, k) {
			r = append(r, k)
		}
	}
	// Rules 1 to 5: the candidate started at an anchor knock g after which
	// every relevant knock of the source is a port of the sequence (any
	// other resets); its bound ports match in any order, repeats and the
	// anchor again are ignored; the knock that matches the last bound port
	// not matched yet completes it, and that must be the event's knock.
	n := len(seq)
	last := len(r) - 1
	if last < 0 || !slices.Contains(seq[1:], r[last].Port) {
		t.Fatalf("event %+v: the last knock of the source is no bound port of the sequence", e)
	}
	from := last
	for from > 0 && slices.Contains(seq, r[from-1].Port) {
		from--
	}
	gap, seqT := int64(o.cfg.GapMax), int64(o.cfg.SeqTimeout)
	d := int64(max(o.cfg.Skew, o.cfg.SkewDetect))
	skew := int64(o.cfg.Skew)
	w := int64(e.Window)
	win := func(ns int64) int64 { return ns / 1e9 / int64(p.Period) }
	tc := r[last].Time.UnixNano()
	kinds := map[EventKind]bool{}
	// Any anchor knock of that stretch may have started the candidate (an
	// expired or evicted one starts again at a later one).
	for x := from; x < last; x++ {
		if r[x].Port != seq[0] {
			continue
		}
		g := r[x].Time.UnixNano()
		ok := abs64(w-win(g)) <= d
		matched, prev := 1, g
		var seen uint32
		for y := x + 1; y <= last && ok; y++ {
			ns := r[y].Time.UnixNano()
			if matched == 1 {
				ok = ns-g <= gap // the anchor-only group's rule 5
			} else {
				ok = ns-prev <= gap && ns-g <= seqT
			}
			i := slices.Index(seq[1:], r[y].Port)
			if !ok || i < 0 || seen>>i&1 != 0 {
				continue // a repeat (or the anchor again) is ignored
			}
			seen |= 1 << i
			matched++
			prev = ns
			if matched == n {
				ok = y == last // it completed at this knock, not later
				break
			}
		}
		if !ok || matched != n {
			continue
		}
		switch {
		case abs64(w-win(g)) > skew:
			kinds[ClockSkew] = true
		case abs64(w-win(tc)) > skew:
			kinds[Expired] = true
		default:
			kinds[Opened], kinds[Replay], kinds[ReplayFull] = true, true, true
		}
	}
	if !kinds[e.Kind] {
		t.Fatalf("event %+v: not justified by the knocks of its source (possible kinds %v)", e, kinds)
	}
	if e.Offset != int(w-win(tc)) {
		t.Fatalf("event %+v: offset, want %d", e, w-win(tc))
	}
	ip, _ := totpseq.IP16(e.Src, p.V6Prefix)
	key := replayKey{user: e.User, service: e.Service, window: w, ip: ip}
	forgettable, seen := o.accepted[key]
	switch e.Kind {
	case Opened:
		if seen && !forgettable {
			t.Fatalf("event %+v: opened a second time", e)
		}
		o.accepted[key] = false
	case Replay:
		if !seen {
			t.Fatalf("event %+v: a replay of a sequence never accepted", e)
		}
	}
}

// trkPlay decodes data into knocks (3 bytes each), gives them to a
// tracker and checks every event with the oracle. It returns the events.
func trkPlay(t testing.TB, data []byte) []Event {
	users := trkFuzzUsers()
	cfg := trkFuzzConfig()
	rec := &trkRec{}
	tr, err := NewTracker(cfg, users, trkT0, rec.emit)
	if err != nil {
		t.Fatal(err)
	}
	o := &trkOracle{t: t, users: users, cfg: cfg, history: map[sourceKey][]Knock{}, accepted: map[replayKey]bool{}}
	type cursor struct {
		u, svc, j int
		window    uint64
	}
	cursors := make([]cursor, len(trkFuzzSrcs)*2)
	now := trkAt(trkMid)
	for i := 0; i+3 <= len(data); i += 3 {
		b0, b1, b2 := data[i], data[i+1], data[i+2]
		si := int(b0&7) % len(trkFuzzSrcs)
		proto := inet.TCP
		if b0&8 != 0 {
			proto = inet.UDP
		}
		now = now.Add(trkFuzzDeltas[b2%16])
		k := Knock{Src: trkFuzzSrcs[si], Proto: proto, Time: now}
		c := &cursors[si*2+int(b0>>3&1)]
		switch b0 >> 4 & 3 {
		case 0, 1:
			k.Port = 10000 + uint16(b1%70) // a few outside the range
		case 2: // the anchor of a true sequence
			c.u = int(b1&3) % len(users)
			c.svc = int(b1>>7) % len(users[c.u].Params.Services)
			c.window = uint64(int64(totpseq.Window(now, users[c.u].Params.Period)) + int64(b1>>2&7) - 4)
			c.j = 0
			fallthrough
		case 3: // the next port of the sequence, its port j again, or any bound port
			if b0>>4&3 == 3 && b1&1 == 0 {
				c.j++
			}
			u := &users[c.u]
			s, err := totpseq.Sequence(&u.Params, u.Params.Services[c.svc], c.window, k.Src)
			if err != nil {
				t.Fatal(err)
			}
			k.Port = s[min(c.j, len(s)-1)]
			if b0>>4&3 == 3 && b1&3 == 3 {
				k.Port = s[1+int(b1>>2)%(len(s)-1)] // bound ports in any order
			}
		}
		if b1 == 0xff && b0&0x80 != 0 {
			k.Src = netip.AddrFrom16(k.Src.As16()) // IPv4-mapped form
		}
		if b1 == 0xfe && b0&0x80 != 0 {
			// A reload: a subset of the users, in another order.
			var sub []User
			for j := range users {
				if u := users[(j+int(b2>>4))%len(users)]; b2>>j&1 != 0 {
					sub = append(sub, u)
				}
			}
			if err := tr.SetUsers(sub, now); err != nil {
				t.Fatal(err)
			}
		}
		before := len(rec.events)
		o.knock(k)
		tr.Knock(k)
		for _, e := range rec.events[before:] {
			o.check(e)
		}
		if s := tr.Stats(); s.Tracked > cfg.Capacity {
			t.Fatalf("%d sources tracked, capacity %d", s.Tracked, cfg.Capacity)
		}
	}
	return rec.events
}

// trkSeedSequence returns fuzz input knocking user u's sequence (true
// window) from source si, 25 ms apart.
func trkSeedSequence(u, si byte, n int) []byte {
	in := []byte{0x20 | si, u | 4<<2, 3}
	for range n - 1 {
		in = append(in, 0x30|si, 0, 3)
	}
	return in
}

// trkSeedReverse returns fuzz input knocking the bound ports of user u's
// 3-port sequence (true window) from source si in reverse order.
func trkSeedReverse(u, si byte) []byte {
	return []byte{0x20 | si, u | 4<<2, 3, 0x30 | si, 1<<2 | 3, 3, 0x30 | si, 0<<2 | 3, 3}
}

func FuzzTracker(f *testing.F) {
	f.Add(trkSeedSequence(0, 0, 2))
	f.Add(trkSeedSequence(1, 2, 3))
	f.Add(trkSeedSequence(2, 8|3, 2))
	f.Add(slices.Concat(trkSeedSequence(0, 0, 2), trkSeedSequence(0, 0, 2), trkSeedSequence(1, 1, 3)))
	f.Add(trkSeedReverse(1, 2))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	// A sequence with a reload of every user in the middle.
	f.Add(slices.Concat(trkSeedSequence(1, 2, 2), []byte{0xb2, 0xfe, 0x17}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 3*1024 { // longer inputs make minimising slow, and add little
			return
		}
		trkPlay(t, data)
	})
}

// TestTrackerOracle checks that the fuzz seeds open, so the oracle is
// exercised, and that the oracle rejects an event with no sequence behind
// it.
func TestTrackerOracle(t *testing.T) {
	for i, in := range [][]byte{
		trkSeedSequence(0, 0, 2),
		trkSeedSequence(1, 2, 3),
		trkSeedSequence(2, 8|3, 2),
		slices.Concat(trkSeedSequence(1, 2, 2), []byte{0xb2, 0xfe, 0x17}), // with a reload
		trkSeedReverse(1, 2), // the bound ports in reverse
	} {
		es := trkPlay(t, in)
		if len(es) != 1 || es[0].Kind != Opened {
			t.Errorf("seed %d: events %+v, want one opening", i, es)
		}
	}
	ft := &trkFatalRecorder{TB: t}
	o := &trkOracle{t: ft, users: trkFuzzUsers(), cfg: trkFuzzConfig(), history: map[sourceKey][]Knock{}, accepted: map[replayKey]bool{}}
	k := Knock{Src: trkA, Proto: inet.TCP, Port: 10001, Time: trkAt(trkMid)}
	o.knock(k)
	func() {
		defer func() { _ = recover() }()
		o.check(Event{Kind: Opened, User: "two", Service: "ssh", Src: trkA, Window: uint64(trkWindow(k.Time, 5)), Time: k.Time})
	}()
	if !ft.failed {
		t.Error("the oracle accepted an opening without a sequence")
	}
}

// trkFatalRecorder records Fatalf instead of failing the test.
type trkFatalRecorder struct {
	testing.TB
	failed bool
}

func (r *trkFatalRecorder) Fatalf(format string, args ...any) {
	r.failed = true
	panic(fmt.Sprintf(format, args...))
}
