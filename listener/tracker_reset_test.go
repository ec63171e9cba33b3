package listener

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

// TestTrackerResetHook: Config.Reset reports the source of every failed
// attempt after an anchor (rule 4), and nothing for a client knocking its
// sequence in three rounds, nor for knocks that start nothing.
func TestTrackerResetHook(t *testing.T) {
	var got []netip.Addr
	cfg := DefaultConfig()
	cfg.Reset = func(src netip.Addr, _ time.Time) { got = append(got, src) }
	tr, rec := trkNew(t, cfg, alice)

	seq := trkSeq(t, alice, "ssh", trkW0, trkA)
	at := trkAt(trkMid)
	for range 3 { // the client's rounds
		for _, k := range trkKnocks(trkA, inet.TCP, seq, at, 10*time.Millisecond) {
			tr.Knock(k)
		}
		at = at.Add(100 * time.Millisecond)
	}
	if len(rec.events) != 1 || rec.events[0].Kind != Opened {
		t.Fatalf("events %+v, want one opening", trkEvents(rec.events))
	}
	if len(got) != 0 {
		t.Errorf("Reset called %d times for a client knocking its sequence, want 0", len(got))
	}

	// An attacker who saw the anchor: anchor, wrong port, five times.
	wrong := seq[1] + 1
	for slices.Contains(seq, wrong) || wrong > alice.Params.Range.Hi {
		wrong--
	}
	for range 5 {
		tr.Knock(Knock{Src: trkB, Proto: inet.TCP, Port: seq[0], Time: at})
		tr.Knock(Knock{Src: trkB, Proto: inet.TCP, Port: wrong, Time: at.Add(time.Millisecond)})
		at = at.Add(10 * time.Millisecond)
	}
	// A scanner that never hits an anchor is not tracked: no attempt.
	tr.Knock(Knock{Src: trkC6, Proto: inet.TCP, Port: wrong, Time: at})
	if want := slices.Repeat([]netip.Addr{trkB}, 5); !slices.Equal(got, want) {
		t.Errorf("Reset calls %v, want %v", got, want)
	}
}
