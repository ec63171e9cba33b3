package listener

import (
	"net/netip"
	"time"
)

// The derivation budget (issue 15 item 2). A knock after an anchor makes
// the tracker derive the bound ports of every live candidate at that
// anchor for the knocking source: one HMAC each. With many users nearly
// every port is an anchor of dozens of candidates, so one ordinary source
// sending anchor, port, anchor, port... could spend tens of microseconds
// of the run loop per knock and starve everyone else's knocks. Each source
// address, and each IPv6 /64, may spend budgetRate derivations a second,
// budgetBurst at once (a generic cell rate algorithm: one Unix time per
// key, no timer).
//
// When a knock would exceed its source's budget, its candidates are not
// derived and the knock counts as one that continues none of them: a
// reset (rule 4), as a wrong guess is. So the attacker learns nothing (a
// guess that was refused and a guess that was wrong look the same: nothing
// opens either way; only the guesses within the budget are looked at, so
// guessing is slowed, never told apart), and a legitimate client on the same
// address is refused only while the budget is spent: refused knocks cost
// nothing, so it refills at budgetRate and is whole again budgetBurst /
// budgetRate (4 s) after the flood stops. A client's own attempt costs
// some hundreds of derivations with 100 000 users, a few with a hundred.
const (
	budgetRate    = 2048            // derivations a second per source address
	budgetBurst   = 8192            // derivations at once per source address
	budgetRate64  = 4 * budgetRate  // per IPv6 /64
	budgetBurst64 = 4 * budgetBurst // per IPv6 /64
	maxBudgetKeys = 1 << 16         // sources (and /64s) remembered at most
)

// budget holds the derivation budget of the sources that derived recently.
// Owned by the goroutine that calls Knock.
type budget struct {
	by, by64 map[netip.Addr]budgetState
	scale    int // the rates and bursts times scale; 0 means 1 (tests raise it)
}

// budgetState is one key's budget.
type budgetState struct {
	tat  int64 // theoretical arrival time (GCRA), Unix ns
	need int   // the derivations of its latest refused knock: spent refuses until they are affordable
}

// take charges n derivations to src (and its /64) at Unix nanoseconds now
// and reports whether its budget allowed them; nothing is charged when
// not, and the refused n is remembered for spent.
func (b *budget) take(src netip.Addr, n int, now int64) bool {
	if b.by == nil {
		b.by = make(map[netip.Addr]budgetState, 1024)
		b.by64 = make(map[netip.Addr]budgetState, 1024)
	}
	x := max(1, b.scale)
	st := b.by[src]
	tat, ok := gcra(st.tat, n, now, x*budgetRate, x*budgetBurst)
	if !ok {
		st.need = n
		store(b.by, src, st, now)
		return false
	}
	if src.Is6() {
		p := netip.PrefixFrom(src, 64).Masked().Addr()
		st64 := b.by64[p]
		tat64, ok := gcra(st64.tat, n, now, x*budgetRate64, x*budgetBurst64)
		if !ok {
			st64.need = n
			store(b.by64, p, st64, now)
			return false
		}
		store(b.by64, p, budgetState{tat: tat64}, now)
	}
	store(b.by, src, budgetState{tat: tat}, now)
	return true
}

// spent reports whether src (or its /64) cannot afford the derivations of
// its latest refused knock (at least one) at Unix nanoseconds now: one map
// look-up, so that a source past its budget costs no walk over its
// anchor's candidates, knock after knock.
func (b *budget) spent(src netip.Addr, now int64) bool {
	if b.by == nil {
		return false
	}
	x := max(1, b.scale)
	if st, ok := b.by[src]; ok {
		if _, ok := gcra(st.tat, max(1, st.need), now, x*budgetRate, x*budgetBurst); !ok {
			return true
		}
	}
	if src.Is6() {
		p := netip.PrefixFrom(src, 64).Masked().Addr()
		if st, ok := b.by64[p]; ok {
			if _, ok := gcra(st.tat, max(1, st.need), now, x*budgetRate64, x*budgetBurst64); !ok {
				return true
			}
		}
	}
	return false
}

// gcra returns the theoretical arrival time after n more units at rate a
// second, burst at once, from tat, and whether they are allowed now.
func gcra(tat int64, n int, now int64, rate, burst int) (int64, bool) {
	per := int64(time.Second) / int64(rate)
	tat = max(tat, now) + int64(n)*per
	return tat, tat-now <= int64(burst)*per
}

// store sets m[k] = st, keeping m within maxBudgetKeys: the keys whose
// budget is whole again go first, then all of them (a flood from ever new
// addresses gets a whole budget per address, at most maxBudgetKeys of
// them at a time).
func store(m map[netip.Addr]budgetState, k netip.Addr, st budgetState, now int64) {
	if _, ok := m[k]; !ok && len(m) >= maxBudgetKeys {
		for a, s := range m {
			if s.tat <= now {
				delete(m, a)
			}
		}
		if len(m) >= maxBudgetKeys {
			clear(m)
		}
	}
	m[k] = st
}
