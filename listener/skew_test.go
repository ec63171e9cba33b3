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

// TestSkewDetectionIsLazy: a sequence of a window outside the skew (here
// +3) costs no derivation until its ports are all in; then its one
// candidate is derived, and it is reported as a clock skew, once, whatever
// the order of its bound ports and however many copies the client sends.
// The same knocks with one wrong port are derived once too, at the same
// point, and are a failed attempt (a reset), not a clock skew.
func TestSkewDetectionIsLazy(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	seq := trkSeq(t, alice, "ssh", trkW0+3, trkA)
	n := len(seq)
	bound := slices.Clone(seq[1:])
	slices.Reverse(bound)
	at := trkAt(trkMid)
	knock := func(src netip.Addr, port uint16) {
		at = at.Add(time.Millisecond)
		tr.Knock(Knock{Src: src, Proto: inet.TCP, Port: port, Time: at})
	}
	knock(trkA, seq[0])
	for i, p := range bound[:n-2] {
		knock(trkA, p)
		knock(trkA, p) // a copy: ignored
		if tr.derived != 0 {
			t.Fatalf("after the anchor and %d of %d bound ports: %d derivations, want none yet", i+1, n-1, tr.derived)
		}
	}
	knock(trkA, bound[n-2])
	if tr.derived != 1 {
		t.Errorf("after the last bound port: %d derivations, want 1 (alice's one candidate)", tr.derived)
	}
	for range 2 { // the client's later rounds
		knock(trkA, seq[0])
		for _, p := range seq[1:] {
			knock(trkA, p)
		}
	}
	want := []trkEv{{ClockSkew, "alice", "ssh", trkA, trkW0 + 3, 3}}
	if got := trkEvents(rec.events); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if s := tr.Stats(); s.Resets != 0 {
		t.Errorf("%d resets for a skewed client's own knocks, want 0: fail2ban must not ban it", s.Resets)
	}

	// From another source, a wrong port in place of one bound port.
	resets, derived := tr.Stats().Resets, tr.derived
	wrong := alice.Params.Range.Lo
	for slices.Contains(seq, wrong) || slices.Contains(trkSeq(t, alice, "ssh", trkW0+3, trkB), wrong) {
		wrong++
	}
	other := trkSeq(t, alice, "ssh", trkW0+3, trkB)
	other[2] = wrong
	at = at.Add(5 * time.Second)
	for i, p := range other {
		knock(trkB, p)
		if i < n-1 && tr.derived != derived {
			t.Fatalf("trkB, after %d knocks: %d derivations, want none yet", i+1, tr.derived-derived)
		}
	}
	if got := tr.derived - derived; got != 1 {
		t.Errorf("trkB: %d derivations, want 1", got)
	}
	if got := tr.Stats().Resets - resets; got != 1 {
		t.Errorf("trkB: %d resets, want 1 (the failed attempt)", got)
	}
	if len(rec.events) != 1 {
		t.Errorf("events %+v, want only trkA's clock skew", trkEvents(rec.events))
	}
}

// TestSkewWatchesBounded: sources that each knock an anchor outside the
// skew and one more port are watched, at most maxSkewWatches of them; the
// oldest make room, so a skewed client that knocks after the flood is
// still reported.
func TestSkewWatchesBounded(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	anchor := trkSeq(t, alice, "ssh", trkW0-4, trkA)[0]
	other := alice.Params.Range.Lo
	for other == anchor {
		other++
	}
	at := trkAt(trkMid)
	for i := range 2 * maxSkewWatches {
		src := trkSpoofed(i)
		tr.Knock(Knock{Src: src, Proto: inet.TCP, Port: anchor, Time: at})
		tr.Knock(Knock{Src: src, Proto: inet.TCP, Port: other, Time: at.Add(time.Microsecond)})
		at = at.Add(2 * time.Microsecond)
	}
	if got := len(tr.skew.idx); got != maxSkewWatches {
		t.Fatalf("%d sources watched, want the bound, %d", got, maxSkewWatches)
	}
	for _, k := range trkKnocks(trkC6, inet.TCP, trkSeq(t, alice, "ssh", trkW0-4, trkC6), at, time.Millisecond) {
		tr.Knock(k)
	}
	want := []trkEv{{ClockSkew, "alice", "ssh", trkC6, trkW0 - 4, -4}}
	if got := trkEvents(rec.events); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if got := len(tr.skew.idx); got > maxSkewWatches {
		t.Errorf("%d sources watched, more than %d", got, maxSkewWatches)
	}
}

// TestSkewRoundsBackToBack: a client whose clock is off sends each
// sequence in three rounds, and its next sequence a second later: each is
// reported. The later rounds leave the source tracked at the first
// sequence's anchor; the next sequence's anchor must not start a watch of
// that anchor (it would take the next sequence's ports and match nothing).
func TestSkewRoundsBackToBack(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	at := trkAt(trkMid)
	var want []trkEv
	for _, off := range []int{3, -3, 4, -2} {
		seq := trkSeq(t, alice, "ssh", uint64(trkW0+off), trkA)
		for range 3 {
			for _, k := range trkKnocks(trkA, inet.TCP, seq, at, 100*time.Microsecond) {
				tr.Knock(k)
			}
			at = at.Add(time.Millisecond)
		}
		at = at.Add(time.Second)
		want = append(want, trkEv{ClockSkew, "alice", "ssh", trkA, uint64(trkW0 + off), off})
	}
	if got := trkEvents(rec.events); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

// TestSkewAfterOpenings: the end-to-end test's order: sequences one
// window ahead and behind open, then three windows ahead and behind are
// each reported as a clock skew, one round each, right after one another.
func TestSkewAfterOpenings(t *testing.T) {
	for _, length := range []int{4, 5, 7} {
		for _, src := range []netip.Addr{trkA, trkA6} {
			t.Run(fmt.Sprintf("len%d/%v", length, src), func(t *testing.T) {
				u := trkUser("ursula", func(p *totpseq.Params) { p.Length = length })
				tr, rec := trkNew(t, DefaultConfig(), u)
				at := trkAt(trkMid)
				var want []trkEv
				for _, off := range []int{1, -1, 3, -3} {
					seq := trkSeq(t, u, "ssh", uint64(trkW0+off), src)
					for _, k := range trkKnocks(src, inet.TCP, seq, at, 100*time.Microsecond) {
						tr.Knock(k)
					}
					at = at.Add(50 * time.Millisecond)
					kind := ClockSkew
					if off == 1 || off == -1 {
						kind = Opened
					}
					want = append(want, trkEv{kind, "ursula", "ssh", src, uint64(trkW0 + off), off})
				}
				if got := trkEvents(rec.events); !slices.Equal(got, want) {
					t.Errorf("events %+v, want %+v", got, want)
				}
			})
		}
	}
}

// TestSkewAfterAnotherAnchor: the knock just before a skewed sequence is
// an anchor of another window outside the skew (with many users, or a
// small range, the last port of a previous attempt often is). The watch it
// starts at the sequence's anchor does not keep the sequence's own from
// starting: the sequence is reported, and the other watch spoils.
func TestSkewAfterAnotherAnchor(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	other := trkSeq(t, alice, "ssh", trkW0+4, trkA)[0]
	seq := trkSeq(t, alice, "ssh", trkW0+3, trkA)
	if slices.Contains(seq, other) {
		t.Skip("the fixture's anchor of window +4 is a port of window +3's sequence")
	}
	at := trkAt(trkMid)
	ks := append([]Knock{{Src: trkA, Proto: inet.TCP, Port: other, Time: at}},
		trkKnocks(trkA, inet.TCP, seq, at.Add(time.Millisecond), time.Millisecond)...)
	for _, k := range ks {
		tr.Knock(k)
	}
	want := []trkEv{{ClockSkew, "alice", "ssh", trkA, trkW0 + 3, 3}}
	if got := trkEvents(rec.events); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}
