package listener

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

func TestReplayRecord(t *testing.T) {
	r := newReplayRecord(2, 2)
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

// TestTrackerUserQuota: one user who completes sequences from many
// addresses (a /64 of its own, spoofed sources) fills its own quota, not
// the record: the other users still open.
func TestTrackerUserQuota(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReplayCapacity = 8
	cfg.ReplayPerUser = 3
	bob := trkUser("bob", nil)
	tr, rec := trkNew(t, cfg, alice, bob)
	at := trkAt(trkMid)
	knock := func(u User, src netip.Addr) EventKind {
		t.Helper()
		n := len(rec.events)
		for _, k := range trkKnocks(src, inet.TCP, trkSeq(t, u, "ssh", trkW0, src), at, 25*time.Millisecond) {
			tr.Knock(k)
		}
		at = at.Add(200 * time.Millisecond)
		if len(rec.events) != n+1 {
			t.Fatalf("%s from %v: %d events, want 1", u.Name, src, len(rec.events)-n)
		}
		return rec.events[n].Kind
	}
	for i := range 5 {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)})
		want := Opened
		if i >= 3 {
			want = UserQuota
		}
		if got := knock(alice, src); got != want {
			t.Errorf("alice's completion %d from %v: %v, want %v", i+1, src, got, want)
		}
	}
	if got := knock(bob, trkB); got != Opened {
		t.Errorf("bob after alice used her quota: %v, want opened", got)
	}
	if s := tr.Stats(); s.UserQuota != 2 || s.Opened != 4 {
		t.Errorf("stats: %d user-quota, %d opened; want 2, 4", s.UserQuota, s.Opened)
	}
}

// TestConfigReplayPerUser: the quota is within the record's capacity.
func TestConfigReplayPerUser(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReplayCapacity = 10
	cfg.ReplayPerUser = 11
	var ce *ConfigError
	if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != "ReplayPerUser" {
		t.Errorf("Validate(replay per user 11 > capacity 10) = %v, want a ConfigError for ReplayPerUser", err)
	}
	cfg.ReplayPerUser = 0
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate(replay capacity 10, per user by default) = %v, want nil (the default is capped)", err)
	}
}

// TestTrackerRestore: sequences accepted by an earlier run are replays for
// a new tracker that restored them; records of other users, services,
// sources or old windows change nothing.
func TestTrackerRestore(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice, carol)
	recs := []Accepted{
		{User: "alice", Service: "ssh", Window: trkW0, Src: trkA},
		{User: "carol", Service: "web", Window: trkW0, Src: trkM4}, // mapped: the same as trkA
		{User: "mallory", Service: "ssh", Window: trkW0, Src: trkA},
		{User: "alice", Service: "web", Window: trkW0, Src: trkA},
		{User: "alice", Service: "ssh", Window: trkW0 - 6, Src: trkA},
		{User: "alice", Service: "ssh", Window: trkW0},
	}
	if n := tr.Restore(recs, trkAt(trkMid)); n != 2 {
		t.Errorf("Restore = %d, want 2 (alice's and carol's current records)", n)
	}
	at := trkAt(trkMid)
	for _, c := range []struct {
		u   User
		svc string
		src netip.Addr
	}{{alice, "ssh", trkA}, {carol, "web", trkA}, {carol, "ssh", trkA}, {alice, "ssh", trkB}} {
		for _, k := range trkKnocks(c.src, inet.TCP, trkSeq(t, c.u, c.svc, trkW0, c.src), at, 25*time.Millisecond) {
			tr.Knock(k)
		}
		at = at.Add(5 * time.Second) // past gap_max: not copies
	}
	want := []EventKind{Replay, Replay, Opened, Opened}
	if len(rec.events) != len(want) {
		t.Fatalf("events %+v, want kinds %v", trkEvents(rec.events), want)
	}
	for i, e := range rec.events {
		if e.Kind != want[i] {
			t.Errorf("event %d (%s %s from %v): %v, want %v", i, e.User, e.Service, e.Src, e.Kind, want[i])
		}
	}
}
