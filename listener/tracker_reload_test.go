package listener

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// TestTrackerReload: SetUsers keeps the progress of users that remain
// with the same parameters, and the replay record; it drops the progress
// of users removed or changed.
func TestTrackerReload(t *testing.T) {
	const ms = time.Millisecond
	changed := trkUser("alice", func(p *totpseq.Params) { p.Secret = []byte("another secret, 32 bytes long!!!") })
	tests := []struct {
		name   string
		before int // knocks of alice's sequence before the reload
		users  []User
		want   []EventKind
	}{
		{"anchor only, alice stays", 1, []User{carol, alice}, []EventKind{Opened}},
		{"two knocks, alice stays", 2, []User{carol, alice}, []EventKind{Opened}},
		{"three knocks, alice stays", 3, []User{alice}, []EventKind{Opened}},
		{"alice removed", 2, []User{carol}, nil},
		{"alice's secret changed", 2, []User{changed}, nil},
		{"alice's other service removed", 2, []User{trkUser("alice", func(p *totpseq.Params) { p.Services = []string{"web"} })}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec := trkNew(t, DefaultConfig(), alice, dave6)
			ks := trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", trkW0, trkA), trkAt(trkMid), 25*ms)
			for _, k := range ks[:tt.before] {
				tr.Knock(k)
			}
			if err := tr.SetUsers(tt.users, trkAt(trkMid)); err != nil {
				t.Fatalf("SetUsers: %v", err)
			}
			for _, k := range ks[tt.before:] {
				tr.Knock(k)
			}
			var got []EventKind
			for _, e := range rec.events {
				got = append(got, e.Kind)
			}
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrackerReloadKeepsReplayRecord: a sequence accepted before a reload
// is a replay after it.
func TestTrackerReloadKeepsReplayRecord(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	ks := trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", trkW0, trkA), trkAt(trkMid), 25*time.Millisecond)
	for _, k := range ks {
		tr.Knock(k)
	}
	if err := tr.SetUsers([]User{carol, alice}, trkAt(trkMid)); err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		k.Time = k.Time.Add(5 * time.Second) // past gap_max: no copy of the first
		tr.Knock(k)
	}
	if len(rec.events) != 2 || rec.events[1].Kind != Replay {
		t.Errorf("events %+v, want opened then replay", rec.events)
	}
}

// TestTrackerReloadErrors: a bad user list or configuration is an error
// that names what is wrong, and the tracker goes on with the old one.
func TestTrackerReloadErrors(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	bad := trkUser("mallory", func(p *totpseq.Params) { p.Range = totpseq.Range{Lo: 10, Hi: 20} })
	users := []struct {
		users []User
		want  string
	}{
		{[]User{alice, bad}, `user "mallory": parameter range: 10-20`},
		{[]User{alice, alice}, `user "alice": listed twice`},
		{[]User{{Params: alice.Params}}, "user 0: empty name"},
	}
	for _, u := range users {
		if err := tr.SetUsers(u.users, trkAt(trkMid)); err == nil || !strings.Contains(err.Error(), u.want) {
			t.Errorf("SetUsers: error %v, want it to contain %q", err, u.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Capacity = 5
	if err := tr.SetConfig(cfg, trkAt(trkMid)); err == nil || !strings.Contains(err.Error(), "capacity 5: cannot change") {
		t.Errorf("SetConfig(capacity 5): %v", err)
	}
	cfg = DefaultConfig()
	cfg.Skew = 9
	if err := tr.SetConfig(cfg, trkAt(trkMid)); err == nil || !strings.Contains(err.Error(), "skew 9") {
		t.Errorf("SetConfig(skew 9): %v", err)
	}
	for _, k := range trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", trkW0-1, trkA), trkAt(trkMid), 25*time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 1 || rec.events[0].Kind != Opened {
		t.Errorf("after failed reloads: events %+v, want alice's opening", rec.events)
	}
}

// TestTrackerSetConfig: a new skew applies from the next knock; the
// sequence in progress is kept.
func TestTrackerSetConfig(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	ks := trkKnocks(trkA, inet.TCP, trkSeq(t, alice, "ssh", trkW0-1, trkA), trkAt(trkMid), 25*time.Millisecond)
	tr.Knock(ks[0])
	tr.Knock(ks[1])
	cfg := DefaultConfig()
	cfg.Skew = 0
	if err := tr.SetConfig(cfg, trkAt(trkMid)); err != nil {
		t.Fatal(err)
	}
	tr.Knock(ks[2])
	tr.Knock(ks[3])
	// Started at -1 under skew 1; completed under skew 0: outside the skew.
	if len(rec.events) != 1 || rec.events[0].Kind != Expired {
		t.Errorf("events %+v, want one expired", rec.events)
	}
	// A new sequence at -1 is now a clock skew.
	for _, k := range trkKnocks(trkB, inet.TCP, trkSeq(t, alice, "ssh", trkW0-1, trkB), trkAt(trkMid), 25*time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 2 || rec.events[1].Kind != ClockSkew {
		t.Errorf("events %+v, want a clock skew second", rec.events)
	}
}

// TestTrackerReloadConcurrent reloads from another goroutine while knocks
// are processed (run with -race).
func TestTrackerReloadConcurrent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Capacity = 1000
	tr, rec := trkNew(t, cfg, alice)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			users := []User{alice}
			if i%2 == 0 {
				users = append(users, carol)
			}
			if err := tr.SetUsers(users, trkAt(trkMid)); err != nil {
				t.Error(err)
				return
			}
			_ = tr.Ranges()
			_ = tr.Stats()
		}
	})
	for i := range 200 {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		for _, k := range trkKnocks(src, inet.TCP, trkSeq(t, alice, "ssh", trkW0, src), trkAt(trkMid+time.Duration(i)*10*time.Millisecond), time.Millisecond) {
			tr.Knock(k)
		}
	}
	close(stop)
	wg.Wait()
	if len(rec.events) != 200 {
		t.Errorf("%d events, want 200 openings", len(rec.events))
	}
}

func TestTrackerConfigErrors(t *testing.T) {
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Skew = -1 }, "skew -1"},
		{func(c *Config) { c.Skew = 6 }, "skew 6"},
		{func(c *Config) { c.SkewDetect = 11 }, "skew detection 11"},
		{func(c *Config) { c.GapMax = -time.Second }, "gap max -1s"},
		{func(c *Config) { c.GapMax = 2 * time.Minute; c.SeqTimeout = 3 * time.Minute }, "gap max 2m0s"},
		{func(c *Config) { c.SeqTimeout = time.Second }, "sequence timeout 1s"},
		{func(c *Config) { c.SeqTimeout = time.Hour }, "sequence timeout 1h0m0s"},
		{func(c *Config) { c.Capacity = -1 }, "capacity -1"},
		{func(c *Config) { c.Capacity = MaxCapacity + 1 }, "capacity 16777217"},
		{func(c *Config) { c.ReplayCapacity = -5 }, "replay capacity -5"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.mod(&cfg)
		_, err := NewTracker(cfg, []User{alice}, trkT0, func(Event) {})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTracker(%+v): error %v, want it to contain %q", cfg, err, tt.want)
		}
	}
	if _, err := NewTracker(DefaultConfig(), nil, trkT0, nil); err == nil {
		t.Error("NewTracker with a nil event function succeeded")
	}
	if _, err := NewTracker(DefaultConfig(), nil, time.Unix(-1, 0), func(Event) {}); err == nil {
		t.Error("NewTracker at a time before 1970 succeeded")
	}
	// The zero Config takes the defaults, with skew 0.
	tr, err := NewTracker(Config{Capacity: 10}, []User{alice}, trkT0, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.st.cfg; c.GapMax != 3*time.Second || c.SeqTimeout != 10*time.Second || c.ReplayCapacity != DefaultReplayCapacity || c.Skew != 0 {
		t.Errorf("zero Config became %+v", c)
	}
}

func TestTrackerRanges(t *testing.T) {
	users := []User{
		alice, // tcp 10000-32767
		trkUser("in", func(p *totpseq.Params) { p.Range = totpseq.Range{Lo: 10000, Hi: 10999} }),
		trkUser("adjacent", func(p *totpseq.Params) { p.Range = totpseq.Range{Lo: 32768, Hi: 40000} }),
		trkUser("apart", func(p *totpseq.Params) { p.Range = totpseq.Range{Lo: 50000, Hi: 50100} }),
		trkUser("udp", func(p *totpseq.Params) { p.Proto = inet.UDP; p.Range = totpseq.Range{Lo: 40000, Hi: 40099} }),
	}
	tr, _ := trkNew(t, Config{Capacity: 10}, users...)
	want := []inet.Range{
		{Proto: inet.TCP, Lo: 10000, Hi: 40000},
		{Proto: inet.TCP, Lo: 50000, Hi: 50100},
		{Proto: inet.UDP, Lo: 40000, Hi: 40099},
	}
	if diff := gocmp.Diff(want, tr.Ranges()); diff != "" {
		t.Errorf("Ranges (-want +got):\n%s", diff)
	}
	if err := tr.SetUsers(users[4:], trkT0); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want[2:], tr.Ranges()); diff != "" {
		t.Errorf("Ranges after SetUsers (-want +got):\n%s", diff)
	}
}

// TestTrackerIgnored: knocks that cannot be knocks change nothing.
func TestTrackerIgnored(t *testing.T) {
	tr, rec := trkNew(t, Config{Capacity: 10}, alice)
	a := trkSeq(t, alice, "ssh", trkW0, trkA)[0]
	for _, k := range []Knock{
		{Src: netip.Addr{}, Proto: inet.TCP, Port: a, Time: trkAt(trkMid)},
		{Src: trkA, Proto: 1, Port: a, Time: trkAt(trkMid)},
		{Src: trkA, Proto: inet.TCP, Port: 0, Time: trkAt(trkMid)},
		{Src: trkA, Proto: inet.TCP, Port: a, Time: time.Time{}},
		{Src: trkA, Proto: inet.TCP, Port: a, Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		tr.Knock(k)
	}
	if s := tr.Stats(); s.Ignored != 5 || s.Tracked != 0 || len(rec.events) != 0 {
		t.Errorf("stats %+v, events %v: want 5 ignored, nothing tracked", s, rec.events)
	}
	// A zone is ignored.
	for _, k := range trkKnocks(trkAddr("fe80::1%eth0"), inet.TCP, trkSeq(t, alice, "ssh", trkW0, trkAddr("fe80::1")), trkAt(trkMid), time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 1 || rec.events[0].Src != trkAddr("fe80::1") {
		t.Errorf("events %+v, want fe80::1 opened", rec.events)
	}
}

// TestTrackerMixedPeriods knocks sequences of users with periods 5, 7 and
// 30 every 700 ms for five minutes: anchor tables are replaced at every
// boundary, sequences straddle boundaries, and every one opens.
func TestTrackerMixedPeriods(t *testing.T) {
	users := []User{
		trkUser("p5", func(p *totpseq.Params) { p.Period = 5 }),
		trkUser("p7", func(p *totpseq.Params) { p.Period = 7 }),
		alice,
	}
	tr, rec := trkNew(t, Config{Skew: 1, SkewDetect: 5, Capacity: 1000}, users...)
	n := 0
	for at := time.Duration(0); at < 5*time.Minute; at += 700 * time.Millisecond {
		for i, u := range users {
			src := netip.AddrFrom4([4]byte{198, 51, byte(n >> 8), byte(n)})
			n++
			start := trkAt(at + time.Duration(i)*time.Millisecond)
			w := trkWindow(start, u.Params.Period)
			for _, k := range trkKnocks(src, inet.TCP, trkSeq(t, u, "ssh", w, src), start, 40*time.Millisecond) {
				tr.Knock(k)
			}
		}
	}
	opened := 0
	for _, e := range rec.events {
		if e.Kind == Opened && (e.Offset == 0 || e.Offset == -1) {
			opened++
		}
	}
	if opened != n || len(rec.events) != n {
		t.Errorf("%d events, %d openings, want %d openings", len(rec.events), opened, n)
	}
	// The first table, then one per boundary: 59 of period 5, 42 of period
	// 7, less the 8 they share (multiples of 35 s).
	if s := tr.Stats(); s.TableBuilds != 1+59+42-8 {
		t.Errorf("%d anchor tables built, want %d", s.TableBuilds, 1+59+42-8)
	}
	if t.Failed() {
		for _, e := range rec.events[:min(10, len(rec.events))] {
			t.Logf("%+v", e)
		}
	}
}

// TestTrackerPrepareCommit: Prepare builds a new configuration and users
// in one step and changes nothing, on error or not; Commit puts the
// prepared state in use, keeping the replay record.
func TestTrackerPrepareCommit(t *testing.T) {
	tr, rec := trkNew(t, DefaultConfig(), alice)
	udp := trkUser("bob", func(p *totpseq.Params) { p.Proto = inet.UDP })
	before := tr.Ranges()

	bad := DefaultConfig()
	bad.GapMax = 2 * time.Minute
	if _, err := tr.Prepare(bad, []User{alice, udp}, trkAt(trkMid)); err == nil || !strings.Contains(err.Error(), "gap max 2m0s") {
		t.Errorf("Prepare(gap max 2m): %v", err)
	}
	cfg := DefaultConfig()
	cfg.Capacity = 5
	if _, err := tr.Prepare(cfg, []User{alice}, trkAt(trkMid)); err == nil || !strings.Contains(err.Error(), "capacity 5: cannot change") {
		t.Errorf("Prepare(capacity 5): %v", err)
	}
	st, err := tr.Prepare(DefaultConfig(), []User{alice, udp}, trkAt(trkMid))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Ranges(); !gocmp.Equal(got, before) {
		t.Errorf("ranges after Prepare: %v, want still %v", got, before)
	}
	want := []inet.Range{before[0], {Proto: inet.UDP, Lo: before[0].Lo, Hi: before[0].Hi}}
	if got := st.Ranges(); !gocmp.Equal(got, want) {
		t.Errorf("staged ranges %v, want %v", got, want)
	}
	seq := trkSeq(t, alice, "ssh", trkW0-1, trkA)
	for _, k := range trkKnocks(trkA, inet.TCP, seq, trkAt(trkMid), 25*time.Millisecond) {
		tr.Knock(k)
	}
	tr.Commit(st)
	if got := tr.Ranges(); !gocmp.Equal(got, want) {
		t.Errorf("ranges after Commit: %v, want %v", got, want)
	}
	// Past gap_max, so the copies of the first knock are done with (rule
	// 6): the same sequence again is a replay, across the Commit.
	for _, k := range trkKnocks(trkA, inet.TCP, seq, trkAt(trkMid+DefaultConfig().GapMax+time.Second), 25*time.Millisecond) {
		tr.Knock(k)
	}
	if len(rec.events) != 2 || rec.events[0].Kind != Opened || rec.events[1].Kind != Replay {
		t.Errorf("events %+v, want an opening, then a replay after Commit", rec.events)
	}
}
