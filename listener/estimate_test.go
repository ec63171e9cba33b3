package listener

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/totpseq"
)

// checkPart is testkit.CheckEstimate, tight: every part of the tracker's
// estimate is measured at its bound.
func checkPart(t *testing.T, part string, got, est int) {
	t.Helper()
	testkit.CheckEstimate(t, part, got, est, true)
}

// TestEstimateMemory builds a tracker of 10 000 users, then fills every
// part that grows with use to its bound (the anchor tables of an idle
// tracker, a reload's second state, the replay record, the deriver cache,
// the derivation budget), and compares the heap's growth at each step with
// the part of EstimateMemory it fills: the estimate must be an upper bound,
// and not more than twice what the heap shows.
func TestEstimateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the anchor tables of 10 000 users four times")
	}
	const n = 10_000
	users := make([]User, n)
	for i := range users {
		users[i] = trkUser(fmt.Sprintf("user%05d", i), func(p *totpseq.Params) {
			if i%10 == 0 {
				p.Services = []string{"ssh", "web"} // some users with two services
				p.Exclude = []uint16{10022, 10080}
			}
		})
	}
	// A small source capacity, so that the users' parts are not lost in
	// the source stores' 30 MiB (TestSourceTableMemory checks those).
	cfg := DefaultConfig()
	cfg.Capacity = 1024
	est := EstimateMemory(cfg, users)
	var keep []any // what each step made, alive until the end

	// NewTracker: one anchor table, the builder, the users, the stores;
	// the replay record's and the deriver cache's empty shells, and the
	// tracker itself, are in parts measured below when full.
	base := testkit.HeapAlloc()
	tr, err := NewTracker(cfg, users, trkT0, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	got := testkit.HeapAlloc() - base
	checkPart(t, "NewTracker (a table, the cache, users, sources)", got,
		est.Tables/anchorTables+est.Cache+est.Users+est.Sources+int(unsafe.Sizeof(Tracker{}))+est.Derivers/64+16<<10)

	// Run's goroutine builds the next table; when no knock took it
	// before the boundary after, it builds that one too, and the first
	// stays for reuse.
	b := tr.st.b
	period := int64(totpseq.DefaultPeriod) * int64(time.Second)
	ns := trkT0.UnixNano()
	mark := testkit.HeapAlloc()
	next := b.build(ns + period)
	tr.ahead.Store(next)
	third := b.build(ns + 2*period)
	keep = append(keep, next, third)
	checkPart(t, "two more anchor tables", testkit.HeapAlloc()-mark, est.Tables-est.Tables/anchorTables)

	// A reload of the same users: a second state, whose builder makes its
	// own three tables while the old state waits for a knock.
	mark = testkit.HeapAlloc()
	st, err := tr.Prepare(cfg, users, trkT0)
	if err != nil {
		t.Fatal(err)
	}
	keep = append(keep, st, st.st.b.build(ns+period), st.st.b.build(ns+2*period))
	checkPart(t, "a reload's second state", testkit.HeapAlloc()-mark, est.Reload)

	// The replay record, full: users take turns, so that no user's quota
	// is reached first.
	mark = testkit.HeapAlloc()
	now := trkT0.UnixNano()
	for i := range tr.st.cfg.ReplayCapacity {
		u := &tr.st.users[i%n]
		var ip [16]byte
		binary.BigEndian.PutUint32(ip[12:], uint32(i))
		k := replayKey{user: u.name, service: u.params.Services[0], window: trkW0, ip: ip}
		if r := tr.replay.add(k, u.period, now); r != replayNew {
			t.Fatalf("replay record: record %d: result %d, want it recorded", i, r)
		}
	}
	checkPart(t, "the replay record full", testkit.HeapAlloc()-mark, est.Replay)

	// The deriver cache, full.
	mark = testkit.HeapAlloc()
	for i := range min(n, maxDerivers) {
		if tr.derivers.get(int32(i), &tr.st.users[i].params) == nil {
			t.Fatalf("deriver of user %d: nil", i)
		}
	}
	checkPart(t, "the deriver cache full", testkit.HeapAlloc()-mark, est.Derivers)

	// The derivation budget, full: IPv6 sources in distinct /64s fill
	// both of its tables.
	mark = testkit.HeapAlloc()
	for i := range maxBudgetKeys {
		var a [16]byte
		a[0] = 0x20
		a[1] = 0x01
		binary.BigEndian.PutUint32(a[4:], uint32(i))
		if !tr.budget.take(netip.AddrFrom16(a), 1, now) {
			t.Fatalf("budget: source %d refused", i)
		}
	}
	if len(tr.budget.by) != maxBudgetKeys || len(tr.budget.by64) != maxBudgetKeys {
		t.Fatalf("budget: %d sources and %d /64s, want %d each", len(tr.budget.by), len(tr.budget.by64), maxBudgetKeys)
	}
	checkPart(t, "the derivation budget full", testkit.HeapAlloc()-mark, est.Budget)

	// The clock skew watches, full: sources that each knocked an anchor
	// outside the skew and one more port.
	mark = testkit.HeapAlloc()
	for i := range maxSkewWatches {
		key := newSourceKey(trkSpoofed(i), tr.st.users[0].params.Proto)
		tr.skew.add(&key)
	}
	if len(tr.skew.idx) != maxSkewWatches {
		t.Fatalf("skew watches: %d, want %d", len(tr.skew.idx), maxSkewWatches)
	}
	checkPart(t, "the clock skew watches full", testkit.HeapAlloc()-mark, est.SkewWatches)

	checkPart(t, "in all", testkit.HeapAlloc()-base, est.Total()+int(unsafe.Sizeof(Tracker{})))
	runtime.KeepAlive(tr)
	runtime.KeepAlive(keep)
	runtime.KeepAlive(users) // the caller's, whose names the tracker shares: not counted
}

// TestEstimateMemoryDefaults: with the default configuration, 100 000
// users with one service each take the figures the daemon's documentation
// quotes (deploy/tknockd.toml, memory_limit), and the parts grow with the
// users as they should.
func TestEstimateMemoryDefaults(t *testing.T) {
	one := EstimateMemory(DefaultConfig(), []User{trkUser("alice", nil)})
	if one.Sources != tableBytes(DefaultCapacity) {
		t.Errorf("sources: %d bytes, want tableBytes(DefaultCapacity) = %d", one.Sources, tableBytes(DefaultCapacity))
	}
	users := make([]User, 100_000)
	for i := range users {
		users[i] = trkUser(fmt.Sprintf("user%06d", i), nil)
	}
	m := EstimateMemory(DefaultConfig(), users)
	// 12 entries of 8 bytes per user and table: 2*5+1 windows, and one
	// back window (2*GapMax of 3s in 30s windows).
	if lo := 3 * len(users) * 12 * 8; m.Tables < lo || m.Tables > lo*3/2 {
		t.Errorf("anchor tables of 100 000 users: %d bytes, want %d to %d", m.Tables, lo, lo*3/2)
	}
	if m.Reload != m.Tables+m.Cache+m.Users {
		t.Errorf("reload: %d bytes, want the tables, cache and users again (%d)", m.Reload, m.Tables+m.Cache+m.Users)
	}
	if m.Sources != one.Sources || m.Budget != one.Budget || m.Replay <= one.Replay || m.Derivers <= one.Derivers {
		t.Errorf("parts that do not depend on the users changed, or parts that do did not:\n1 user: %+v\n100000: %+v", one, m)
	}
	t.Logf("100 000 users: %d MiB in all: %+v", m.Total()>>20, m)
}
