package listener

import (
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

func TestReplayRecord(t *testing.T) {
	r := newReplayRecord(2)
	now := trkT0.UnixNano()
	k := func(w int64) replayKey { return replayKey{user: "alice", service: "ssh", window: w} }
	steps := []struct {
		key  replayKey
		now  int64
		want replayResult
	}{
		{k(trkW0), now, replayNew},
		{k(trkW0), now, replaySeen},
		{k(trkW0 + 1), now, replayNew},
		{k(trkW0 - 1), now, replayFull},
		// Still full of records within now-MaxSkew..now+MaxSkew.
		{k(trkW0 + 5), now + 5*30e9, replayFull},
		// Window trkW0 has left the widest range: its record goes.
		{k(trkW0 + 6), now + 6*30e9, replayNew},
		{k(trkW0 + 1), now + 6*30e9, replaySeen},
		{k(trkW0 + 6), now + 6*30e9, replaySeen},
	}
	for i, s := range steps {
		if got := r.add(s.key, 30, s.now); got != s.want {
			t.Errorf("step %d: add(window %d) = %d, want %d", i, s.key.window, got, s.want)
		}
	}
}

// TestTrackerReplayFull: a full record refuses to open rather than forget.
func TestTrackerReplayFull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReplayCapacity = 1
	tr, rec := trkNew(t, cfg, alice)
	knock := func(window uint64, at time.Time) {
		for _, k := range trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", window, trkA), at, 25*time.Millisecond) {
			tr.Knock(k)
		}
	}
	knock(trkW0, trkAt(trkMid))
	knock(trkW0+1, trkAt(trkMid+time.Second))
	// Seven windows on, the first record can go.
	knock(trkW0+7, trkAt(7*30*time.Second+trkMid))
	want := []EventKind{Opened, ReplayFull, Opened}
	if len(rec.events) != len(want) {
		t.Fatalf("events %+v, want kinds %v", rec.events, want)
	}
	for i, e := range rec.events {
		if e.Kind != want[i] {
			t.Errorf("event %d: %v, want %v", i, e.Kind, want[i])
		}
	}
	if s := tr.Stats(); s.ReplayFull != 1 || s.Opened != 2 {
		t.Errorf("stats %+v, want 1 replay-full, 2 opened", s)
	}
}

// TestTrackerReplayClockBack: a record outlives a clock stepped back, so a
// sequence replayed after the step is still a replay.
func TestTrackerReplayClockBack(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	s := trkSeq(t, alice, "ssh", trkW0, trkA)
	for _, k := range trkKnocks(trkA, inet.TCP, s, trkAt(trkMid), 25*time.Millisecond) {
		tr.Knock(k)
	}
	// An hour later a knock from elsewhere, then the clock goes back.
	tr.Knock(Knock{Src: trkB, Proto: inet.TCP, Port: 12345, Time: trkAt(time.Hour)})
	for _, k := range trkKnocks(trkA, inet.TCP, s, trkAt(trkMid+5*time.Second), 25*time.Millisecond) { // past gap_max: no copy
		tr.Knock(k)
	}
	if len(rec.events) != 2 || rec.events[0].Kind != Opened || rec.events[1].Kind != Replay {
		t.Errorf("events %+v, want opened then replay", rec.events)
	}
}
