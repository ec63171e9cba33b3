package listener

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// trkState builds the validated state of users under cfg at trkT0.
func trkState(t testing.TB, cfg Config, users []User) *trackerState {
	t.Helper()
	st, err := newTrackerState(cfg, users, trkT0)
	if err != nil {
		t.Fatalf("newTrackerState: %v", err)
	}
	return st
}

// trkTableEnt is one candidate of an anchor table, spelled out.
type trkTableEnt struct {
	Proto  int
	Port   uint16
	Slot   uint32
	Window int64
	Live   bool
}

// trkTableDump lists the candidates of tab.
func trkTableDump(tab *anchorTable) []trkTableEnt {
	var out []trkTableEnt
	for pi := range 2 {
		for p := range 65536 {
			live := len(tab.live(pi, uint16(p)))
			for i, e := range tab.all(pi, uint16(p)) {
				out = append(out, trkTableEnt{pi, uint16(p), e.slot, tab.window(e), i < live})
			}
		}
	}
	return trkSortEnts(out)
}

func trkSortEnts(s []trkTableEnt) []trkTableEnt {
	slices.SortFunc(s, func(a, b trkTableEnt) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.Window, b.Window))
	})
	return s
}

// trkBruteTable computes what the table for ns must hold, one HMAC per
// candidate, independently of the builder.
func trkBruteTable(t testing.TB, st *trackerState, ns int64) (ents []trkTableEnt, from, until int64) {
	t.Helper()
	d := int64(st.cfg.depth())
	from, until = -1<<63, 1<<63-1
	sec := ns / 1e9
	for s, sl := range st.slots {
		u := &st.users[sl.user]
		p := int64(u.params.Period)
		w := sec / p
		from = max(from, w*p*1e9)
		until = min(until, (w+1)*p*1e9)
		for x := max(0, w-d-int64(u.back)); x <= w+d; x++ {
			a, err := totpseq.Anchor(&u.params, sl.service, uint64(x))
			if err != nil {
				t.Fatal(err)
			}
			ents = append(ents, trkTableEnt{protoIndex(u.params.Proto), a, uint32(s), x, x >= w-d})
		}
	}
	return trkSortEnts(ents), from, until
}

func trkMixedUsers() []User {
	return []User{
		trkUser("p5", func(p *totpseq.Params) { p.Period = 5 }),
		trkUser("p7", func(p *totpseq.Params) { p.Period = 7; p.Services = []string{"ssh", "web", "db"} }),
		trkUser("p30", nil),
		trkUser("p30udp", func(p *totpseq.Params) { p.Proto = inet.UDP; p.Range = totpseq.Range{Lo: 40000, Hi: 40099} }),
		trkUser("p3600", func(p *totpseq.Params) { p.Period = 3600 }),
		trkUser("small", func(p *totpseq.Params) {
			p.Range = totpseq.Range{Lo: 1, Hi: 70}
			p.Exclude = []uint16{2, 3, 5, 7, 11}
		}),
	}
}

// TestAnchorTable checks every table an incremental builder makes, over
// times that move forward by small and large steps and backwards, against
// a brute-force computation.
func TestAnchorTable(t *testing.T) {
	for _, cfg := range []Config{
		DefaultConfig(),
		{Skew: 0, SkewDetect: 0},
		{Skew: 2, SkewDetect: 10, GapMax: 20 * time.Second, SeqTimeout: time.Minute},
	} {
		t.Run(fmt.Sprintf("skew=%d,detect=%d,gap=%v", cfg.Skew, cfg.SkewDetect, cfg.GapMax), func(t *testing.T) {
			st := trkState(t, cfg, trkMixedUsers())
			rng := rand.New(rand.NewPCG(1, 2))
			ns := trkT0.UnixNano()
			steps := []time.Duration{time.Millisecond, time.Second, 4 * time.Second, 7 * time.Second, 31 * time.Second, time.Hour, -3 * time.Second, -2 * time.Hour}
			for i := range 40 {
				ns += int64(steps[rng.IntN(len(steps))])
				tab := st.b.build(ns)
				want, from, until := trkBruteTable(t, st, ns)
				if tab.from != from || tab.until != until {
					t.Errorf("step %d: table interval [%d, %d), want [%d, %d)", i, tab.from, tab.until, from, until)
				}
				if diff := gocmp.Diff(want, trkTableDump(tab)); diff != "" {
					t.Fatalf("step %d (t=%v): table (-want +got):\n%s", i, time.Unix(0, ns).UTC(), diff)
				}
				if ns < tab.from || ns >= tab.until {
					t.Errorf("step %d: %d outside the table's interval", i, ns)
				}
				st.b.recycle(tab)
			}
		})
	}
}

// TestAnchorTableParallel checks that a build spread over goroutines gives
// the table a single goroutine gives.
func TestAnchorTableParallel(t *testing.T) {
	var users []User
	for i := range 300 {
		users = append(users, trkUser(fmt.Sprintf("u%d", i), func(p *totpseq.Params) { p.Period = 5 + i%3 }))
	}
	cfg := DefaultConfig()
	par := trkState(t, cfg, users) // 300 users * 12 windows: above minParallel
	ser := trkState(t, cfg, users)
	ns := trkT0.UnixNano() + 3*int64(time.Hour)
	a := par.b.build(ns)
	ser.b.derive(ns, 0, len(ser.users))
	b := &anchorTable{base: make([]int64, len(ser.slots))}
	ser.b.sort(b, ns)
	if diff := gocmp.Diff(trkTableDump(b), trkTableDump(a)); diff != "" {
		t.Errorf("parallel build differs (-serial +parallel):\n%s", diff)
	}
	// Periods 5, 6, 7 with gap 3s keep 2, 1, 1 windows behind the live 11.
	if want := 100*13 + 200*12; len(a.ents) != want {
		t.Errorf("%d candidates, want %d", len(a.ents), want)
	}
}

// TestAnchorTableNoUsers: an empty user list gives an empty table valid
// for ever.
func TestAnchorTableNoUsers(t *testing.T) {
	st := trkState(t, DefaultConfig(), nil)
	if len(st.tab.ents) != 0 || st.tab.until != 1<<63-1 {
		t.Errorf("table without users: %d candidates, until %d", len(st.tab.ents), st.tab.until)
	}
}

// TestAnchorTableBuildGarbage: the table of each next window boundary,
// built into a recycled table, allocates a few times, not once per user:
// with 100 000 users a Deriver per user was 130 MiB of garbage at every
// boundary, which the daemon's heap grew by.
func TestAnchorTableBuildGarbage(t *testing.T) {
	const users = 5000
	st := trkState(t, DefaultConfig(), trkBenchUsers(users))
	b := st.b
	tab := st.tab
	ns := tab.until
	allocs := testing.AllocsPerRun(10, func() {
		b.recycle(tab)
		tab = b.build(ns)
		ns = tab.until
	})
	// The parallel build starts a goroutine per CPU, and each worker makes
	// its Deriver.
	if limit := float64(8 + 4*runtime.GOMAXPROCS(0)); allocs > limit {
		t.Errorf("a build at the next window boundary allocates %v times with %d users, want at most %v", allocs, users, limit)
	}
}
