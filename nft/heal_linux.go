package nft

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/google/nftables"
)

// Healing: the table is rebuilt when something else changes or deletes it
// (`nft flush ruleset`, `nft -f /etc/nftables.conf`, a script), and the live
// grants are put back with the time they had left.
//
// The grants are known from a record kept by Allow rather than read back
// from the kernel: once the sets are gone there is nothing to read, and a
// periodic read-back would lose every grant made since the last read. Grants
// only ever come through Allow, so the record is exact; it also holds the
// grants found in the sets at the first Apply (made by an earlier run).

// minPrune is the record size below which expired entries are left for the
// next heal check.
const minPrune = 256

// checkEvery is how often Watch checks the table even when the monitor
// reports nothing: a backstop for notifications lost when the monitor's
// socket overflows.
const checkEvery = 5 * time.Second

// remember records a grant for every endpoint, with its deadline.
func (t *Table) remember(src netip.Addr, eps []Endpoint, ttl time.Duration) {
	now := t.now()
	for _, e := range eps {
		t.record[grantID{src, e}] = now.Add(ttl)
	}
	if len(t.record) >= t.pruneAt {
		t.prune(now)
		t.pruneAt = max(minPrune, 2*len(t.record))
	}
}

func (t *Table) prune(now time.Time) {
	maps.DeleteFunc(t.record, func(_ grantID, deadline time.Time) bool { return !deadline.After(now) })
}

// recorded returns the live recorded grants of one family as set elements
// with their remaining time, in a stable order.
func (t *Table) recorded(v6 bool) []nftables.SetElement {
	now := t.now()
	ids := slices.Collect(maps.Keys(t.record))
	slices.SortFunc(ids, func(a, b grantID) int {
		return compareGrants(Grant{Src: a.src, Endpoint: a.ep}, Grant{Src: b.src, Endpoint: b.ep})
	})
	var elems []nftables.SetElement
	for _, id := range ids {
		left := t.record[id].Sub(now).Truncate(time.Millisecond)
		if id.src.Is6() != v6 || left < time.Millisecond {
			continue
		}
		elems = append(elems, nftables.SetElement{Key: grantKey(id.src, id.ep), Timeout: left})
	}
	return elems
}

// seed records, once, the grants that are in the sets when the table is
// first applied: a restarted daemon can then restore them too.
func (t *Table) seed() {
	if t.seeded {
		return
	}
	t.seeded = true
	grants, err := t.readGrants()
	if err != nil {
		t.log.Warn().Err(err).Msg("live grants not read: they will not be restored if the ruleset is flushed")
		return
	}
	now := t.now()
	for _, g := range grants {
		if g.Timeout > 0 {
			t.record[grantID{g.Src, g.Endpoint}] = now.Add(g.Remaining)
		}
	}
}

// intact reports whether the own table is as built; if not, why.
func (t *Table) intact() (string, error) {
	ok, err := t.exists()
	if err != nil {
		return "", err
	}
	if !ok {
		return "table missing", nil
	}
	sets, err := t.conn.GetSets(t.table)
	if err != nil {
		return "", fmt.Errorf("list sets: %w", classify(err))
	}
	for _, name := range []string{set4Name, set6Name, protectedName} {
		if !slices.ContainsFunc(sets, func(s *nftables.Set) bool { return s.Name == name }) {
			return "set " + name + " missing", nil
		}
	}
	prot := &nftables.Set{Table: t.table, Name: protectedName, KeyType: keyTypePP}
	elems, err := t.conn.GetSetElements(prot)
	if err != nil {
		return "", fmt.Errorf("read set %s: %w", protectedName, classify(err))
	}
	if len(elems) != len(t.cfg.Protected) {
		return fmt.Sprintf("set %s has %d elements, want %d", protectedName, len(elems), len(t.cfg.Protected)), nil
	}
	chains, err := t.conn.ListChainsOfTableFamily(t.table.Family)
	if err != nil {
		return "", fmt.Errorf("list chains: %w", classify(err))
	}
	seen := 0
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != t.table.Name {
			continue
		}
		want, ok := t.expect[ch.Name]
		if !ok {
			return "unknown chain " + ch.Name, nil
		}
		seen++
		rules, err := t.conn.GetRules(t.table, ch)
		if err != nil {
			return "", fmt.Errorf("list rules of chain %s: %w", ch.Name, classify(err))
		}
		if len(rules) != want {
			return fmt.Sprintf("chain %s has %d rules, want %d", ch.Name, len(rules), want), nil
		}
	}
	if seen != len(t.expect) {
		return "chain missing", nil
	}
	return "", nil
}

// heal checks the table (own-table mode) or the administrator's sets
// (external-set mode) and repairs what it can. recreated says that the
// external sets may have been deleted and created again since the last
// check, so the recorded grants are added to them again.
func (t *Table) heal(recreated bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || !t.applied {
		return
	}
	start := t.now()
	t.prune(start)
	if t.cfg.External != nil {
		t.healExternal(recreated)
		return
	}
	t.arm()
	why, err := t.intact()
	if err = t.settle(err); err != nil {
		t.log.Error().Err(err).Msg("table check failed")
		return
	}
	if why == "" {
		return
	}
	t.arm()
	if err := t.settle(t.build()); err != nil {
		t.log.Error().Err(err).Str("damage", why).Str("table", t.cfg.Table).
			Msg("table damaged and NOT rebuilt: protected ports may be open to everyone")
		return
	}
	t.log.Warn().Str("event", "table_rebuilt").Str("damage", why).Str("table", t.cfg.Table).
		Int("grants_restored", t.restored).Dur("took", t.now().Sub(start)).
		Msg("table changed by someone else: rebuilt")
}

func (t *Table) healExternal(recreated bool) {
	t.arm()
	if err := t.settle(t.checkExternal()); err != nil {
		if t.verified {
			t.log.Error().Err(err).Str("event", "external_sets_missing").Str("table", t.describe()).
				Msg("the external sets are gone: knocks cannot open access until they are back (checked again at every ruleset change)")
		}
		t.verified = false
		return
	}
	if t.verified && !recreated {
		return
	}
	n, err := t.restoreExternal()
	switch {
	case err != nil:
		t.log.Error().Err(err).Str("table", t.describe()).Msg("external sets present, but the live grants were not restored")
	case !t.verified:
		t.log.Warn().Str("event", "external_sets_back").Str("table", t.describe()).Int("grants_restored", n).
			Msg("external sets present again")
	case n > 0:
		t.log.Warn().Str("event", "external_sets_recreated").Str("table", t.describe()).Int("grants_restored", n).
			Msg("external sets were deleted and created again: live grants restored")
	}
	t.verified = true
}

// restoreExternal adds the recorded grants to the external sets again.
func (t *Table) restoreExternal() (int, error) {
	n := 0
	for _, s := range []*nftables.Set{t.set4, t.set6} {
		if s == nil {
			continue
		}
		elems := t.recorded(s == t.set6)
		if err := addChunked(t.conn.SetAddElements, s, elems); err != nil {
			return 0, t.discard(err)
		}
		n += len(elems)
	}
	if n == 0 {
		return 0, nil
	}
	return n, classify(t.conn.Flush())
}

// Watch keeps the table as Apply built it until ctx is done: it follows
// nftables' change notifications and, when something else altered or
// deleted the table (own-table mode), rebuilds it with the live grants and
// the time they had left, typically within a few milliseconds. In
// external-set mode it logs an error when the administrator's sets vanish
// and restores the live grants into them when they are back. It also checks
// every few seconds, in case notifications were lost.
//
// Watch returns nil when ctx is done, and an error when the notifications
// cannot be followed (the netlink socket cannot be opened again): the
// caller should then stop, so that a supervisor restarts it. Call Apply
// first.
func (t *Table) Watch(ctx context.Context) error {
	const tries = 5
	failures := 0
	for {
		subscribed, err := t.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed {
			failures = 0
		}
		failures++
		if failures >= tries {
			return fmt.Errorf("nft: watch %s: %w", t.describe(), err)
		}
		t.log.Warn().Err(err).Msg("nftables monitor failed: reopening it")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		}
	}
}

// watch follows the notifications until ctx is done or the monitor fails;
// subscribed says whether it got that far.
func (t *Table) watch(ctx context.Context) (subscribed bool, err error) {
	// The monitor needs a socket of its own: on the Table's lasting one,
	// notifications would mix with the answers to its requests.
	c, err := nftables.New(t.monOpts...)
	if err != nil {
		return false, fmt.Errorf("open netlink socket: %w", classify(err))
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(16))
	events, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		return false, fmt.Errorf("subscribe to nftables changes: %w", classify(err))
	}
	defer func() {
		mon.Close()
		go func() { // the monitor's goroutine may be blocked on a send
			for range events {
			}
		}()
	}()
	// Subscribed first, then checked: nothing that happens in between is
	// missed.
	t.heal(false)
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	var later <-chan time.Time // armed: a check for element deletions is due
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-tick.C:
			t.heal(false)
		case <-later:
			later = nil
			t.heal(false)
		case ev, ok := <-events:
			if !ok {
				return true, errors.New("nftables monitor closed")
			}
			if ev.GeneratedBy != nil && ev.GeneratedBy.Type == nftables.MonitorEventTypeOOB {
				return true, fmt.Errorf("nftables monitor: %w", ev.GeneratedBy.Error)
			}
			switch touches, recreated, elems := t.touched(ev); {
			case touches:
				t.heal(recreated)
			case elems && later == nil:
				// Other programs (fail2ban, CrowdSec) delete elements of
				// their own sets all the time, and the notification does
				// not say which set: one check per elementDelay at most.
				later = time.After(elementDelay)
			}
		}
	}
}

// elementDelay is how long Watch waits after another program deleted set
// elements (perhaps of our protected set) before it checks the table.
const elementDelay = 100 * time.Millisecond

// touched reports whether a transaction changed our table (or, in
// external-set mode, the administrator's) other than by its set elements,
// whether it deleted that table or one of our sets, and whether another
// process deleted set elements of some set (the notification does not say
// which).
func (t *Table) touched(ev *nftables.MonitorEvents) (touches, recreated, elems bool) {
	self := false
	if ev.GeneratedBy != nil {
		if g, ok := ev.GeneratedBy.Data.(*nftables.GenMsg); ok {
			self = int(g.ProcPID) == os.Getpid()
		}
	}
	t.mu.Lock()
	name, fam := t.table.Name, t.table.Family
	sets := []string{set4Name, set6Name, protectedName}
	if t.set4 != nil {
		sets = append(sets, t.set4.Name)
	}
	if t.set6 != nil {
		sets = append(sets, t.set6.Name)
	}
	t.mu.Unlock()
	ours := func(tb *nftables.Table) bool { return tb != nil && tb.Name == name && tb.Family == fam }
	for _, ev := range ev.Changes {
		switch d := ev.Data.(type) {
		case *nftables.Table:
			if ours(d) {
				touches = true
				recreated = recreated || ev.Type == nftables.MonitorEventTypeDelTable
			}
		case *nftables.Chain:
			touches = touches || ours(d.Table)
		case *nftables.Rule:
			touches = touches || ours(d.Table)
		case *nftables.Set:
			// The library does not decode a set's table: match the name.
			if slices.Contains(sets, d.Name) {
				touches = true
				recreated = recreated || ev.Type == nftables.MonitorEventTypeDelSet
			}
		case []nftables.SetElement:
			// Neither the set nor the table is decoded. Our own Allow
			// deletes elements too (add, delete, add): only deletions by
			// another process count (someone flushing the protected set).
			elems = elems || (ev.Type == nftables.MonitorEventTypeDelSetElem && !self)
		}
	}
	return touches, recreated, elems
}
