package listener

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

var (
	trkA   = trkAddr("192.0.2.10")
	trkB   = trkAddr("192.0.2.20")
	trkA6  = trkAddr("2001:db8:1:2::a")
	trkB6  = trkAddr("2001:db8:1:2::b")   // same /64 as trkA6
	trkC6  = trkAddr("2001:db8:1:3::a")   // another /64
	trkM4  = trkAddr("::ffff:192.0.2.10") // trkA, IPv4-mapped
	alice  = trkUser("alice", nil)
	carol  = trkUser("carol", func(p *totpseq.Params) { p.Services = []string{"ssh", "web"} })
	dave6  = trkUser("dave", func(p *totpseq.Params) { p.V6Prefix = 64 })
	erin   = trkUser("erin", func(p *totpseq.Params) { p.Proto = inet.UDP })
	frank  = trkUser("frank", func(p *totpseq.Params) { p.Length = 2 })
	grace  = trkUser("grace", func(p *totpseq.Params) { p.Length = 16 })
	heidi  = trkUser("heidi", func(p *totpseq.Params) { p.Length = 5 })
	trkMid = 10 * time.Second // knocks start this far into window trkW0
)

// TestTrackerRules is PROTOCOL.md section 3, rule by rule.
func TestTrackerRules(t *testing.T) {
	// seq is the sequence of u's service in window trkW0+off (period 30) for src.
	seq := func(t *testing.T, u User, svc string, off int, src netip.Addr) []uint16 {
		return trkSeq(t, u, svc, uint64(trkW0+off), src)
	}
	const ms = time.Millisecond
	start := trkAt(trkMid)
	ev := func(kind EventKind, u User, svc string, src netip.Addr, off, atOff int) trkEv {
		return trkEv{kind, u.Name, svc, src, uint64(trkW0 + off), off - atOff}
	}
	// notIn returns a port of alice's range that is not in ports.
	notIn := func(ports []uint16) uint16 {
		for p := uint16(20000); ; p++ {
			if !slices.Contains(ports, p) {
				return p
			}
		}
	}
	tests := []struct {
		name   string
		cfg    func(*Config)
		users  []User
		knocks func(t *testing.T) []Knock
		want   []trkEv
		stats  func(t *testing.T, s Stats)
	}{
		{
			name:  "complete",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				// Still tracked: the completed candidate absorbs copies
				// of its ports until gap_max.
				if s.Started != 1 || s.Advanced != 3 || s.Opened != 1 || s.Tracked != 1 {
					t.Errorf("stats = %+v, want 1 started, 3 advanced, 1 opened, 1 tracked", s)
				}
			},
		},
		{
			name:  "start: anchor only",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA)[:1], start, 25*ms)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Started != 1 || s.Tracked != 1 {
					t.Errorf("stats = %+v, want 1 started, 1 tracked", s)
				}
			},
		},
		{
			name:  "advance: three of four",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA)[:3], start, 25*ms)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Advanced != 2 || s.Tracked != 1 {
					t.Errorf("stats = %+v, want 2 advanced, 1 tracked", s)
				}
			},
		},
		{
			name:  "duplicates are ignored",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[0], s[1], s[1], s[1], s[2], s[3]}, start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				if s.Duplicates != 3 {
					t.Errorf("duplicates = %d, want 3", s.Duplicates)
				}
			},
		},
		{
			name:  "reset: a stray knock mid-sequence",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[1], notIn(s), s[2], s[3]}, start, 25*ms)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Resets != 1 {
					t.Errorf("resets = %d, want 1", s.Resets)
				}
			},
		},
		{
			name:  "duplicate: an earlier bound port again is ignored",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[1], s[2], s[1], s[3]}, start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				if s.Duplicates != 1 || s.Resets != 0 {
					t.Errorf("stats = %+v, want 1 duplicate, no reset", s)
				}
			},
		},
		{
			name:  "advance: the bound ports in any order",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[2], s[1], s[3]}, start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "advance: the bound ports in reverse, length 16",
			users: []User{grace},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, grace, "ssh", 0, trkA)
				r := slices.Clone(s[1:])
				slices.Reverse(r)
				return trkKnocks(trkA, inet.TCP, append([]uint16{s[0]}, r...), start, ms)
			},
			want: []trkEv{ev(Opened, grace, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				if s.Advanced != 15 || s.Resets != 0 {
					t.Errorf("stats = %+v, want 15 advanced, no reset", s)
				}
			},
		},
		{
			name:  "duplicate: every port three times, the bound ones in rounds (the client's pattern)",
			users: []User{heidi},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, heidi, "ssh", 0, trkA)
				b := s[1:]
				return trkKnocks(trkA, inet.TCP, slices.Concat([]uint16{s[0], s[0], s[0]}, b, b, b), start, 0)
			},
			want: []trkEv{ev(Opened, heidi, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				// The second and third anchor, then the fourth bound port of
				// the first round completes: the 8 bound ports after it are
				// copies for the completed candidate, no replay.
				if s.Duplicates != 10 || s.Advanced != 4 || s.Opened != 1 || s.Replays != 0 || s.Resets != 0 {
					t.Errorf("stats = %+v, want 10 duplicates, 4 advanced, 1 opened, no replay, no reset", s)
				}
			},
		},
		{
			name:  "duplicate: the anchor again after a bound port is ignored, the sequence opens once",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[3], s[0], s[1], s[0], s[2], s[1], s[3]}, start, ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "start: a bound port before the anchor does not count",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[1], s[0], s[2], s[3]}, start, 25*ms)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Advanced != 2 || s.Tracked != 1 || s.Opened != 0 {
					t.Errorf("stats = %+v, want 2 advanced, 1 tracked, none opened", s)
				}
			},
		},
		{
			name:  "reset: a stray knock after bound ports in any order",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], s[3], s[1], notIn(s), s[2]}, start, 25*ms)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Resets != 1 || s.Opened != 0 {
					t.Errorf("stats = %+v, want 1 reset, none opened", s)
				}
			},
		},
		{
			name:  "reset, then the whole sequence again",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, append([]uint16{s[0], s[1], notIn(s)}, s...), start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "the anchor again restarts the sequence (reset, then rule 1)",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, append([]uint16{s[0], s[1], s[2]}, s...), start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "timing: every gap exactly gap_max",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 3*time.Second)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "timing: a gap just over gap_max",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				ks := trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
				for i := 2; i < len(ks); i++ {
					ks[i].Time = ks[i].Time.Add(3*time.Second + 1)
				}
				return ks
			},
			stats: func(t *testing.T, s Stats) {
				if s.Timeouts != 1 {
					t.Errorf("timeouts = %d, want 1", s.Timeouts)
				}
			},
		},
		{
			name:  "timing: a gap over gap_max after the anchor",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				ks := trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
				for i := 1; i < len(ks); i++ {
					ks[i].Time = ks[i].Time.Add(3*time.Second + 1)
				}
				return ks
			},
		},
		{
			name:  "timing: a duplicate does not extend the gap",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				ks := trkKnocks(trkA, inet.TCP, []uint16{s[0], s[1], s[1], s[2], s[3]}, start, 25*ms)
				ks[2].Time = ks[1].Time.Add(2 * time.Second)
				ks[3].Time = ks[1].Time.Add(3*time.Second + ms)
				ks[4].Time = ks[3].Time.Add(ms)
				return ks
			},
		},
		{
			name:  "timing: the whole sequence exactly seq_timeout",
			users: []User{heidi},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, heidi, "ssh", 0, trkA), start, 2500*ms)
			},
			want: []trkEv{ev(Opened, heidi, "ssh", trkA, 0, 0)},
		},
		{
			name:  "timing: the whole sequence over seq_timeout",
			users: []User{heidi},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, heidi, "ssh", 0, trkA), start, 2500*ms+1)
			},
			stats: func(t *testing.T, s Stats) {
				if s.Timeouts != 1 || s.Opened != 0 {
					t.Errorf("stats = %+v, want 1 timeout", s)
				}
			},
		},
		{
			name:  "completion: the whole sequence again within gap_max is a copy, not a replay (the client's rounds)",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return slices.Concat(trkKnocks(trkA, inet.TCP, s, start, ms), trkKnocks(trkA, inet.TCP, s, start.Add(10*ms), ms),
					trkKnocks(trkA, inet.TCP, s, start.Add(20*ms), 0))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
			stats: func(t *testing.T, s Stats) {
				if s.Duplicates != 8 || s.Replays != 0 || s.Resets != 0 || s.Timeouts != 0 {
					t.Errorf("stats = %+v, want 8 duplicates, no replay, reset or timeout", s)
				}
			},
		},
		{
			name:  "completion: the sequence of a length-2 user again at once is a copy",
			users: []User{frank},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, frank, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, slices.Concat(s, s, s), start, ms)
			},
			want: []trkEv{ev(Opened, frank, "ssh", trkA, 0, 0)},
		},
		{
			name:  "completion: after a stray knock the same sequence is a replay",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, slices.Concat(s, []uint16{notIn(s)}, s), start, ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0), ev(Replay, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "completion: a replay in the same window opens nothing",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return slices.Concat(trkKnocks(trkA, inet.TCP, s, start, 25*ms), trkKnocks(trkA, inet.TCP, s, start.Add(5*time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0), ev(Replay, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "completion: window T+1 right after window T",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 1, trkA), start.Add(time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0), ev(Opened, alice, "ssh", trkA, 1, 0)},
		},
		{
			name:  "completion: a captured sequence from another source opens nothing",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkB, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
			},
		},
		{
			name:  "completion: a replay once the window has left the skew opens nothing",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, alice, "ssh", 0, trkA)
				return slices.Concat(trkKnocks(trkA, inet.TCP, s, start, 25*ms), trkKnocks(trkA, inet.TCP, s, start.Add(60*time.Second), 25*ms))
			},
			// Two windows later the anchor is only considered for clock skew detection.
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0), ev(ClockSkew, alice, "ssh", trkA, 0, 2)},
		},
		{
			name:  "completion: window -1 and +1 open with skew 1",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -1, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 1, trkA), start.Add(time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, -1, 0), ev(Opened, alice, "ssh", trkA, 1, 0)},
		},
		{
			name:  "completion: windows -2..-5 and +2..+5 are a clock skew with skew 1",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				var ks []Knock
				for i, off := range []int{-5, -4, -3, -2, 2, 3, 4, 5} {
					ks = append(ks, trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", off, trkA), start.Add(time.Duration(i)*time.Second), 25*ms)...)
				}
				return ks
			},
			want: []trkEv{
				ev(ClockSkew, alice, "ssh", trkA, -5, 0), ev(ClockSkew, alice, "ssh", trkA, -4, 0),
				ev(ClockSkew, alice, "ssh", trkA, -3, 0), ev(ClockSkew, alice, "ssh", trkA, -2, 0),
				ev(ClockSkew, alice, "ssh", trkA, 2, 0), ev(ClockSkew, alice, "ssh", trkA, 3, 0),
				ev(ClockSkew, alice, "ssh", trkA, 4, 0), ev(ClockSkew, alice, "ssh", trkA, 5, 0),
			},
			stats: func(t *testing.T, s Stats) {
				if s.ClockSkews != 8 || s.Opened != 0 {
					t.Errorf("stats = %+v, want 8 clock skews, nothing opened", s)
				}
			},
		},
		{
			name:  "completion: windows -6 and +6 are not even tracked",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -6, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 6, trkA), start.Add(time.Second), 25*ms))
			},
		},
		{
			name:  "skew 0: only the current window opens",
			cfg:   func(c *Config) { c.Skew = 0 },
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -1, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start.Add(time.Second), 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 1, trkA), start.Add(2*time.Second), 25*ms))
			},
			want: []trkEv{ev(ClockSkew, alice, "ssh", trkA, -1, 0), ev(Opened, alice, "ssh", trkA, 0, 0), ev(ClockSkew, alice, "ssh", trkA, 1, 0)},
		},
		{
			name:  "skew 2: windows -2 and +2 open, -3 is a clock skew",
			cfg:   func(c *Config) { c.Skew = 2 },
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -2, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 2, trkA), start.Add(time.Second), 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -3, trkA), start.Add(2*time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, -2, 0), ev(Opened, alice, "ssh", trkA, 2, 0), ev(ClockSkew, alice, "ssh", trkA, -3, 0)},
		},
		{
			name:  "skew detection off: window -2 is not tracked",
			cfg:   func(c *Config) { c.SkewDetect = 0 },
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -2, trkA), start, 25*ms)
			},
		},
		{
			name:  "window edge: started in one window, finished in the next (skew 1)",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), trkAt(30*time.Second-40*ms), 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 1)},
		},
		{
			name:  "window edge: started in one window, finished in the next (skew 0)",
			cfg:   func(c *Config) { c.Skew = 0 },
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), trkAt(30*time.Second-40*ms), 25*ms)
			},
			want: []trkEv{ev(Expired, alice, "ssh", trkA, 0, 1)},
		},
		{
			name:  "window edge: started at -1, finished at -2 (skew 1)",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -1, trkA), trkAt(30*time.Second-40*ms), 25*ms)
			},
			want: []trkEv{ev(Expired, alice, "ssh", trkA, -1, 1)},
			stats: func(t *testing.T, s Stats) {
				if s.Expired != 1 {
					t.Errorf("expired = %d, want 1", s.Expired)
				}
			},
		},
		{
			name:  "window edge: started at -2, finished at -3 (skew 2)",
			cfg:   func(c *Config) { c.Skew = 2 },
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", -2, trkA), trkAt(30*time.Second-40*ms), 25*ms)
			},
			want: []trkEv{ev(Expired, alice, "ssh", trkA, -2, 1)},
		},
		{
			name:  "window edge: started at +2 (outside skew 1) stays a clock skew at +1",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 2, trkA), trkAt(30*time.Second-40*ms), 25*ms)
			},
			want: []trkEv{ev(ClockSkew, alice, "ssh", trkA, 2, 1)},
		},
		{
			name:  "window edge: the anchor just before the boundary, the rest after (skew 1, window +1)",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 1, trkA), trkAt(30*time.Second-10*ms), 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 1, 1)},
		},
		{
			name:  "two services of one user",
			users: []User{carol},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA, inet.TCP, seq(t, carol, "web", 0, trkA), start, 25*ms),
					trkKnocks(trkA, inet.TCP, seq(t, carol, "ssh", 0, trkA), start.Add(time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, carol, "web", trkA, 0, 0), ev(Opened, carol, "ssh", trkA, 0, 0)},
		},
		{
			name:  "two sequences interleaved from one source reset each other",
			users: []User{carol},
			knocks: func(t *testing.T) []Knock {
				a, b := seq(t, carol, "web", 0, trkA), seq(t, carol, "ssh", 0, trkA)
				var ports []uint16
				for i := range a {
					ports = append(ports, a[i], b[i])
				}
				return trkKnocks(trkA, inet.TCP, ports, start, 25*ms)
			},
		},
		{
			name:  "two sources at once do not disturb each other",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				a := trkKnocks(trkA, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
				b := trkKnocks(trkB, inet.TCP, seq(t, alice, "ssh", 0, trkB), start.Add(ms), 25*ms)
				var ks []Knock
				for i := range a {
					ks = append(ks, a[i], b[i])
				}
				return ks
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0), ev(Opened, alice, "ssh", trkB, 0, 0)},
		},
		{
			name:  "length 2",
			users: []User{frank},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, frank, "ssh", 0, trkA), start, 25*ms)
			},
			want: []trkEv{ev(Opened, frank, "ssh", trkA, 0, 0)},
		},
		{
			name:  "length 16",
			users: []User{grace},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkA, inet.TCP, seq(t, grace, "ssh", 0, trkA), start, 25*ms)
			},
			want: []trkEv{ev(Opened, grace, "ssh", trkA, 0, 0)},
		},
		{
			name:  "IPv6, v6prefix 128",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return slices.Concat(
					trkKnocks(trkA6, inet.TCP, seq(t, alice, "ssh", 0, trkA6), start, 25*ms),
					trkKnocks(trkB6, inet.TCP, seq(t, alice, "ssh", 1, trkA6), start.Add(time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA6, 0, 0)},
		},
		{
			name:  "IPv6, v6prefix 64: the same /64 shares a sequence and its replay record",
			users: []User{dave6},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, dave6, "ssh", 0, trkA6)
				return slices.Concat(
					trkKnocks(trkB6, inet.TCP, s, start, 25*ms),
					trkKnocks(trkC6, inet.TCP, s, start.Add(time.Second), 25*ms),
					trkKnocks(trkA6, inet.TCP, s, start.Add(2*time.Second), 25*ms))
			},
			want: []trkEv{ev(Opened, dave6, "ssh", trkB6, 0, 0), ev(Replay, dave6, "ssh", trkA6, 0, 0)},
		},
		{
			name:  "IPv4-mapped source counts as the IPv4 address",
			users: []User{alice},
			knocks: func(t *testing.T) []Knock {
				return trkKnocks(trkM4, inet.TCP, seq(t, alice, "ssh", 0, trkA), start, 25*ms)
			},
			want: []trkEv{ev(Opened, alice, "ssh", trkA, 0, 0)},
		},
		{
			name:  "UDP user: TCP knocks are not its knocks",
			users: []User{erin},
			knocks: func(t *testing.T) []Knock {
				s := seq(t, erin, "ssh", 0, trkA)
				ks := trkKnocks(trkA, inet.TCP, s, start, 25*ms)
				us := trkKnocks(trkA, inet.UDP, s, start.Add(time.Second), 25*ms)
				// A TCP knock from the same address in the middle of the UDP sequence.
				return slices.Concat(ks, us[:2], []Knock{{Src: trkA, Proto: inet.TCP, Port: notIn(s), Time: us[1].Time.Add(ms)}}, us[2:])
			},
			want: []trkEv{ev(Opened, erin, "ssh", trkA, 0, 0)},
		},
		{
			name: "knocks outside the range and to excluded ports are not knocks",
			users: []User{trkUser("ivan", func(p *totpseq.Params) {
				p.Range = totpseq.Range{Lo: 10000, Hi: 10999}
				p.Exclude = []uint16{10500}
			})},
			knocks: func(t *testing.T) []Knock {
				u := trkUser("ivan", func(p *totpseq.Params) {
					p.Range = totpseq.Range{Lo: 10000, Hi: 10999}
					p.Exclude = []uint16{10500}
				})
				s := seq(t, u, "ssh", 0, trkA)
				return trkKnocks(trkA, inet.TCP, []uint16{s[0], 22, s[1], 10500, 11000, s[2], 9999, s[3]}, start, 25*ms)
			},
			want: []trkEv{{Opened, "ivan", "ssh", trkA, trkW0, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			tr, rec := trkNew(t, cfg, tt.users...)
			ks := tt.knocks(t)
			for _, k := range ks {
				tr.Knock(k)
			}
			if diff := cmp.Diff(tt.want, trkEvents(rec.events), cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			for _, e := range rec.events {
				if !e.Time.Equal(ks[len(ks)-1].Time) && !slices.ContainsFunc(ks, func(k Knock) bool { return k.Time.Equal(e.Time) }) {
					t.Errorf("event %v: time %v is no knock's time", e.Kind, e.Time)
				}
			}
			if tt.stats != nil {
				tt.stats(t, tr.Stats())
			}
			if s := tr.Stats(); s.Knocks != uint64(len(ks)) {
				t.Errorf("Stats().Knocks = %d, want %d", s.Knocks, len(ks))
			}
		})
	}
}

// trkSharedAnchor returns two users whose ssh anchors coincide in window
// trkW0 but whose sequences for src differ at the second port. A 64-port
// range makes such a pair quick to find.
func trkSharedAnchor(t *testing.T, src netip.Addr) (User, User) {
	t.Helper()
	small := func(p *totpseq.Params) { p.Range = totpseq.Range{Lo: 10000, Hi: 10063} }
	u := trkUser("judy", small)
	su := trkSeq(t, u, "ssh", trkW0, src)
	for i := range 10000 {
		v := trkUser("kim"+string(rune('a'+i%26))+strings.Repeat("x", i/26), small)
		sv := trkSeq(t, v, "ssh", trkW0, src)
		if sv[0] == su[0] && sv[1] != su[1] {
			return u, v
		}
	}
	t.Fatal("no pair of users with a shared anchor found")
	return User{}, User{}
}

func TestTrackerSharedAnchor(t *testing.T) {
	u, v := trkSharedAnchor(t, trkA)
	tr, rec := trkNew(t, DefaultConfig(), u, v)
	start := trkAt(trkMid)
	for _, k := range trkKnocks(trkA, inet.TCP, trkSeq(t, v, "ssh", trkW0, trkA), start, 25*time.Millisecond) {
		tr.Knock(k)
	}
	for _, k := range trkKnocks(trkA, inet.TCP, trkSeq(t, u, "ssh", trkW0, trkA), start.Add(time.Second), 25*time.Millisecond) {
		tr.Knock(k)
	}
	want := []trkEv{
		{Opened, v.Name, "ssh", trkA, trkW0, 0},
		{Opened, u.Name, "ssh", trkA, trkW0, 0},
	}
	if diff := cmp.Diff(want, trkEvents(rec.events), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
