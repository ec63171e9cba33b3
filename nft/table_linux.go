package nft

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Table is the daemon's handle on its nftables table (own-table mode) or on
// the administrator's sets (external-set mode). Its methods are safe for
// concurrent use; each one blocks until the kernel has answered (Allow takes
// some 50µs, Apply half a millisecond).
type Table struct {
	log zerolog.Logger

	// mu serializes every use of conn: the library buffers the messages of
	// a batch in the Conn, so two goroutines building batches at once would
	// send each other's halves. It also guards the fields below.
	mu       sync.Mutex
	conn     *nftables.Conn
	connOpts []nftables.ConnOption // to reopen conn
	cfg      Config                // normalized
	table    *nftables.Table
	set4     *nftables.Set // nil: no IPv4 grants (external mode without set4)
	set6     *nftables.Set // nil: no IPv6 grants
	verified bool          // external mode: the sets were checked by Apply or heal
	applied  bool          // Apply succeeded once
	closed   bool

	// record holds the deadline of every grant made through this Table
	// (and of those found in the sets at the first Apply), so that sets
	// that vanished (`nft flush ruleset`) are filled again with the grants'
	// remaining time. Expired entries are pruned as it grows.
	record  map[grantID]time.Time
	pruneAt int // prune when record reaches this size
	seeded  bool
	// expect is the number of rules of each chain of the table as built
	// (own-table mode).
	expect   map[string]int
	restored int // grants restored by the latest build
	now      func() time.Time
	monOpts  []nftables.ConnOption // for the monitor's own socket
	nl       *nlSocket             // conn's socket, for deadlines
	timeout  time.Duration         // of each operation on conn (WithTimeout)
}

// Open validates cfg and connects to nftables in the caller's network
// namespace (or the one of WithNetNSFd). It reads the kernel's table list
// once, so a missing privilege or a kernel without nftables is reported
// here, in plain words (ErrPermission, ErrNotSupported). Open changes
// nothing: call Apply. Close the Table when done.
func Open(cfg Config, opts ...Option) (*Table, error) {
	o := options{log: zerolog.Nop(), timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	n, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("nft: config: %w", err)
	}
	nl := new(nlSocket)
	copts := append([]nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(nl.record)}, o.connOptions()...)
	conn, err := nftables.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("nft: open netlink socket: %w", probeError(err))
	}
	t := &Table{log: o.log, conn: conn, connOpts: copts, now: time.Now, nl: nl, timeout: o.timeout,
		record: make(map[grantID]time.Time), pruneAt: minPrune, monOpts: o.connOptions()}
	t.setConfig(n)
	if _, err := conn.ListTablesOfFamily(t.table.Family); err != nil {
		conn.CloseLasting()
		return nil, fmt.Errorf("nft: list tables: %w", probeError(err))
	}
	return t, nil
}

// connOptions are the options of a connection to the kernel (or the test
// fake) that o names; Open adds AsLasting for its own.
func (o options) connOptions() []nftables.ConnOption {
	var copts []nftables.ConnOption
	if o.netnsFd != 0 {
		copts = append(copts, nftables.WithNetNSFd(o.netnsFd))
	}
	if o.dial != nil {
		copts = append(copts, nftables.WithTestDial(o.dial))
	}
	return copts
}

// setConfig installs a normalized config and the handles derived from it.
func (t *Table) setConfig(cfg Config) {
	t.cfg = cfg
	t.verified = false
	if ext := cfg.External; ext != nil {
		t.table = &nftables.Table{Name: ext.Table, Family: family(ext.Family)}
		t.set4, t.set6 = nil, nil
		if ext.Set4 != "" {
			t.set4 = grantSet(t.table, ext.Set4, false)
		}
		if ext.Set6 != "" {
			t.set6 = grantSet(t.table, ext.Set6, true)
		}
		return
	}
	t.table = &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet}
	t.set4 = grantSet(t.table, set4Name, false)
	t.set6 = grantSet(t.table, set6Name, true)
}

func family(name string) nftables.TableFamily {
	switch name {
	case "ip":
		return nftables.TableFamilyIPv4
	case "ip6":
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyINet
}

func (t *Table) describe() string {
	return fmt.Sprintf("table %s %s", familyName(t.table.Family), t.table.Name)
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return "inet"
}

var errClosed = ErrClosed

// Apply makes the kernel state match cfg, and is the one verb that sets
// the table: at start-up and at every reload. Applying the same Config
// twice changes nothing.
//
// In own-table mode it builds the whole table in one atomic batch, replacing
// whatever an earlier Apply built: the resulting ruleset is always the same
// for the same Config. The grant sets are kept as they are, so live grants
// run on undisturbed and a restarted daemon does not make users knock
// again. If a table of that name exists but was not built by this package,
// Apply refuses to touch it.
//
// In external-set mode it only checks that the administrator's sets exist
// with the right key type and the timeout flag.
//
// On error the configuration applied before stays in force, in the kernel
// and in t. The table name and the mode (own table or external sets) are
// those given to Open and cannot change: the old table would be left
// behind.
func (t *Table) Apply(cfg Config) error {
	n, err := cfg.normalize()
	if err != nil {
		return fmt.Errorf("nft: apply: config: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("nft: apply: %w", errClosed)
	}
	old := t.cfg
	if (n.External == nil) != (old.External == nil) || n.Table != old.Table ||
		(n.External != nil && *n.External != *old.External) {
		return errors.New("nft: apply: the table name or the external sets differ from those given to Open: restart the daemon for that")
	}
	t.setConfig(n)
	t.arm()
	if err := t.settle(t.ensureLocked()); err != nil {
		t.setConfig(old)
		return err
	}
	t.applied = true
	return nil
}

func (t *Table) ensureLocked() error {
	if t.cfg.External != nil {
		if err := t.checkExternal(); err != nil {
			return fmt.Errorf("nft: apply %s: %w", t.describe(), err)
		}
		t.verified = true
	} else {
		if err := t.build(); err != nil {
			return fmt.Errorf("nft: apply %s: %w", t.describe(), err)
		}
		t.log.Info().Str("table", t.cfg.Table).Int("protected", len(t.cfg.Protected)).
			Int("knock_ranges", len(t.cfg.Knocks)).Bool("drop_knocks", t.cfg.DropKnocks).
			Bool("protect_loopback", t.cfg.ProtectLoopback).Msg("table applied")
	}
	t.seed()
	return nil
}

// exists reports whether our table is in the kernel.
func (t *Table) exists() (bool, error) {
	tables, err := t.conn.ListTablesOfFamily(t.table.Family)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", classify(err))
	}
	return slices.ContainsFunc(tables, func(x *nftables.Table) bool {
		return x.Name == t.table.Name && x.Family == t.table.Family
	}), nil
}

// owned lists the sets of the existing table and returns an error unless it
// has the grant sets this package creates: a table of the same name that
// someone else made is never changed or deleted.
func (t *Table) owned() ([]*nftables.Set, error) {
	sets, err := t.conn.GetSets(t.table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", classify(err))
	}
	found := 0
	for _, s := range sets {
		if (s.Name == set4Name && sameType(s, keyType4)) || (s.Name == set6Name && sameType(s, keyType6)) {
			found++
		}
	}
	if found != 2 {
		return nil, fmt.Errorf("the table exists but was not built by tknockd (no timeout sets %s and %s): "+
			"it is left alone; pick another table name or delete it", set4Name, set6Name)
	}
	return sets, nil
}

func sameType(s *nftables.Set, want nftables.SetDatatype) bool {
	return s.HasTimeout && !s.IsMap && !s.Interval && s.KeyType.Bytes == want.Bytes &&
		s.KeyType.GetNFTMagic() == want.GetNFTMagic()
}

// build makes the table match t.cfg in one atomic batch. The grant sets
// stay in place with their elements, whose timeouts keep running as if
// nothing happened; everything else in the table (chains, rules, other
// sets) is deleted and created anew, so the result is the same whatever
// was there before.
//
// Keeping the sets also avoids reading them: a dump of a big set comes in
// parts, and the kernel resumes each part by skipping as many elements as it
// already sent, so a hash table resized in between (as it is after many adds
// or expiries) yields a short read, which a rebuild would turn into lost
// grants.
func (t *Table) build() error {
	c, cfg := t.conn, t.cfg
	var oldSets []*nftables.Set
	var oldChains []*nftables.Chain
	ok, err := t.exists()
	if err != nil {
		return err
	}
	if ok {
		if oldSets, err = t.owned(); err != nil {
			return err
		}
		chains, err := c.ListChainsOfTableFamily(t.table.Family)
		if err != nil {
			return fmt.Errorf("list chains: %w", classify(err))
		}
		for _, ch := range chains {
			if ch.Table != nil && ch.Table.Name == t.table.Name {
				oldChains = append(oldChains, ch)
			}
		}
	}

	c.AddTable(t.table)
	if len(oldChains) > 0 {
		c.FlushTable(t.table) // every rule first, so no jump keeps a chain busy
	}
	for _, ch := range oldChains {
		c.DelChain(ch)
	}
	for _, s := range oldSets {
		if s.Name != set4Name && s.Name != set6Name {
			c.DelSet(s)
		}
	}

	set4, set6 := grantSet(t.table, set4Name, false), grantSet(t.table, set6Name, true)
	prot := &nftables.Set{Table: t.table, Name: protectedName, KeyType: keyTypePP, Concatenation: true}
	// Set IDs name the sets within this batch only. Setting them here
	// keeps AddSet from taking one from the library's global counter, which
	// it increments without a lock.
	set4.ID, set6.ID, prot.ID = 1, 2, 3
	protected := make([]nftables.SetElement, len(cfg.Protected))
	for i, e := range cfg.Protected {
		protected[i].Key = endpointKey(e)
	}
	// A grant set that exists stays as it is (owned checked its type):
	// adding it again would fail if its definition differs in a detail
	// nft sets and the library does not, as when the table was saved with
	// `nft list ruleset` and loaded back with `nft -f`.
	kept := func(s *nftables.Set) bool {
		return slices.ContainsFunc(oldSets, func(o *nftables.Set) bool { return o.Name == s.Name })
	}
	for _, s := range []*nftables.Set{set4, set6, prot} {
		if s != prot && kept(s) {
			continue
		}
		if err := c.AddSet(s, nil); err != nil {
			return t.discard(err)
		}
	}
	if err := addChunked(c.SetAddElements, prot, protected); err != nil {
		return t.discard(err)
	}
	restored := 0
	for _, s := range []*nftables.Set{set4, set6} {
		if kept(s) {
			continue // its elements are still there
		}
		elems := t.recorded(s == set6)
		if err := addChunked(c.SetAddElements, s, elems); err != nil {
			return t.discard(err)
		}
		restored += len(elems)
	}
	t.expect = t.addChains(set4, set6, prot)
	if err := c.Flush(); err != nil {
		err = classify(err)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("set %s or %s differs from what tknockd creates (delete the table to start afresh): %w", set4Name, set6Name, err)
		}
		return err
	}
	t.set4, t.set6 = set4, set6
	t.restored = restored
	return nil
}

// addChains queues the table's chains and their rules, and returns the
// number of rules of each chain.
func (t *Table) addChains(set4, set6, prot *nftables.Set) map[string]int {
	c, cfg := t.conn, t.cfg
	policy := nftables.ChainPolicyAccept
	add := func(name string, rules [][]expr.Any) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t.table})
		for _, exprs := range rules {
			c.AddRule(&nftables.Rule{Table: t.table, Chain: ch, Exprs: exprs})
		}
		return ch
	}
	base := func(name string, hook *nftables.ChainHook, prio int32) {
		p := nftables.ChainPriority(prio)
		ch := c.AddChain(&nftables.Chain{
			Name: name, Table: t.table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: &p, Policy: &policy,
		})
		c.AddRule(&nftables.Rule{Table: t.table, Chain: ch, Exprs: jumpRule(guardName)})
	}
	closed := closedRules(set4, set6)
	guard := guardRules(cfg, prot, closedName)
	// A chain must exist before a rule jumps to it.
	add(closedName, closed)
	add(guardName, guard)
	base(preroutingName, nftables.ChainHookPrerouting, rawPriority)
	base(inputName, nftables.ChainHookInput, cfg.Priority)
	return map[string]int{closedName: len(closed), guardName: len(guard), preroutingName: 1, inputName: 1}
}

// readGrants reads the grant sets. A dump can come back short while the
// kernel resizes a set's hash table (see build), so it reads until two
// reads in a row agree, pausing a little longer each time; if they never
// do, it returns the union of all its reads.
func (t *Table) readGrants() ([]Grant, error) {
	const reads = 6
	union := make(map[grantID]Grant)
	var prev []Grant
	for i := range reads {
		cur, err := t.readOnce()
		if err != nil {
			return nil, err
		}
		if i > 0 && slices.EqualFunc(prev, cur, func(a, b Grant) bool { return compareGrants(a, b) == 0 }) {
			return cur, nil
		}
		for _, g := range cur {
			union[grantID{g.Src, g.Endpoint}] = g
		}
		prev = cur
		if i > 0 {
			time.Sleep(time.Millisecond << i)
		}
	}
	all := slices.Collect(maps.Values(union))
	slices.SortFunc(all, compareGrants)
	return all, nil
}

type grantID struct {
	src netip.Addr
	ep  Endpoint
}

func (t *Table) readOnce() ([]Grant, error) {
	var grants []Grant
	for _, s := range []*nftables.Set{t.set4, t.set6} {
		if s == nil {
			continue
		}
		elems, err := t.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("read set %s: %w", s.Name, classify(err))
		}
		for _, el := range elems {
			src, ep, err := parseGrantKey(el.Key)
			if err != nil {
				return nil, fmt.Errorf("read set %s: %w", s.Name, err)
			}
			grants = append(grants, Grant{Src: src, Endpoint: ep, Timeout: el.Timeout, Remaining: el.Expires})
		}
	}
	slices.SortFunc(grants, compareGrants)
	return grants, nil
}

// maxChunk is the most elements queued in one netlink message: a message
// attribute holds at most 64 KiB, and an IPv6 grant takes about 60 bytes.
const maxChunk = 512

// addChunked queues op (add or delete) for elems, in messages of at most
// maxChunk elements; they all go in the same batch.
func addChunked(op func(*nftables.Set, []nftables.SetElement) error, s *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxChunk) {
		if err := op(s, chunk); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	return nil
}

// discard drops a half-built batch after the library failed to queue a
// message, so that nothing of it is ever sent. The library has no call for
// that, so the connection is replaced.
func (t *Table) discard(cause error) error {
	_ = t.conn.CloseLasting()
	conn, err := nftables.New(t.connOpts...)
	if err != nil {
		t.closed = true
		return errors.Join(cause, fmt.Errorf("reopen netlink socket: %w: %w", ErrClosed, classify(err)))
	}
	t.conn = conn
	return cause
}

// checkExternal verifies that the administrator's sets exist and will
// expire their elements.
func (t *Table) checkExternal() error {
	for _, s := range []*nftables.Set{t.set4, t.set6} {
		if s == nil {
			continue
		}
		got, err := t.conn.GetSetByName(t.table, s.Name)
		if err != nil {
			err = classify(err)
			if errors.Is(err, ErrMissing) {
				return fmt.Errorf("set %s: not found: add it to your ruleset (see the nft package documentation): %w", s.Name, err)
			}
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		want := keyType4
		if s == t.set6 {
			want = keyType6
		}
		if !got.HasTimeout {
			return fmt.Errorf("set %s: has no \"flags timeout\": grants would never expire", s.Name)
		}
		if !sameType(got, want) {
			return fmt.Errorf("set %s: type %s: want %s (and no interval flag)", s.Name, got.KeyType.Name, want.Name)
		}
	}
	return nil
}

// Allow lets src open new connections to every endpoint of svc for ttl
// (from 1ms to MaxTTL; the kernel counts in milliseconds). If src already
// holds a live grant for an endpoint, its timeout starts again from ttl: no
// duplicate, no error. An IPv4-mapped IPv6 source counts as the IPv4
// address. All endpoints are granted in one atomic batch.
//
// In external-set mode, Apply must have succeeded first.
func (t *Table) Allow(src netip.Addr, svc Service, ttl time.Duration) error {
	src, err := checkAllow(src, svc, ttl)
	if err != nil {
		return fmt.Errorf("nft: allow: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.arm()
	err = t.settle(t.allowLocked(src, svc.Endpoints, ttl))
	if errors.Is(err, ErrMissing) && t.cfg.External == nil && t.applied && !t.closed {
		// Flushed before Watch noticed: rebuild (with the recorded grants)
		// and try once more.
		t.arm()
		if berr := t.settle(t.build()); berr != nil {
			err = errors.Join(err, fmt.Errorf("rebuild: %w", berr))
		} else {
			t.log.Warn().Str("event", "table_rebuilt").Str("damage", "table missing at a grant").
				Int("grants_restored", t.restored).Msg("table changed by someone else: rebuilt")
			t.arm()
			err = t.settle(t.allowLocked(src, svc.Endpoints, ttl))
		}
	}
	if err != nil {
		return fmt.Errorf("nft: allow %v %s: %w", src, endpointList(svc.Endpoints), err)
	}
	t.remember(src, svc.Endpoints, ttl)
	t.log.Debug().Str("src", src.String()).Str("service", svc.Name).Dur("ttl", ttl).Msg("access granted")
	return nil
}

func (t *Table) allowLocked(src netip.Addr, eps []Endpoint, ttl time.Duration) error {
	if t.closed {
		return errClosed
	}
	if t.cfg.External != nil && !t.verified {
		if t.applied {
			return errors.New("the external sets are missing (see the earlier error)")
		}
		return errors.New("the external sets were not checked: call Apply first")
	}
	set := t.set4
	if src.Is6() {
		set = t.set6
	}
	if set == nil {
		if src.Is6() {
			return errors.New("no set for IPv6 sources is configured")
		}
		return errors.New("no set for IPv4 sources is configured")
	}
	elems := make([]nftables.SetElement, len(eps))
	for i, e := range eps {
		elems[i] = nftables.SetElement{Key: grantKey(src, e), Timeout: ttl}
	}
	// Add, delete, add in one batch refreshes the timeout on every kernel:
	// the first add makes the delete valid when the element is new, and
	// older kernels do not update the timeout of an element that exists.
	for _, op := range []func(*nftables.Set, []nftables.SetElement) error{
		t.conn.SetAddElements, t.conn.SetDeleteElements, t.conn.SetAddElements,
	} {
		if err := addChunked(op, set, elems); err != nil {
			return t.discard(err)
		}
	}
	if err := t.conn.Flush(); err != nil {
		return classify(err)
	}
	return nil
}

// Grants reads the live grants back from the kernel, sorted by source,
// protocol and port. While grants are added or expire in bulk, the kernel's
// listing can miss some; Grants reads again until two reads agree, which
// costs a few milliseconds at worst.
func (t *Table) Grants() ([]Grant, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("nft: grants: %w", errClosed)
	}
	t.arm()
	if t.cfg.External == nil {
		ok, err := t.exists()
		if err != nil {
			return nil, fmt.Errorf("nft: grants: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("nft: grants: %s: %w", t.describe(), ErrMissing)
		}
	}
	g, err := t.readGrants()
	if err = t.settle(err); err != nil {
		return nil, fmt.Errorf("nft: grants: %s: %w", t.describe(), err)
	}
	return g, nil
}

// Teardown removes the table in own-table mode, and nothing else; after it
// the protected ports are as the rest of the ruleset leaves them. A missing
// table is not an error. In external-set mode there is nothing to remove:
// the administrator's sets empty themselves as grants expire.
//
// The daemon does not call Teardown on a normal stop: the table stays so
// strangers still cannot reach the protected ports. After Teardown, Watch
// leaves the table alone until the next Apply.
func (t *Table) Teardown() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("nft: teardown: %w", errClosed)
	}
	if t.cfg.External != nil {
		return nil
	}
	t.arm()
	if err := t.settle(t.teardownLocked()); err != nil {
		return fmt.Errorf("nft: teardown %s: %w", t.describe(), err)
	}
	t.applied = false // Watch must not build it again
	t.log.Info().Str("table", t.cfg.Table).Msg("table removed")
	return nil
}

func (t *Table) teardownLocked() error {
	ok, err := t.exists()
	if err != nil || !ok {
		return err
	}
	if _, err := t.owned(); err != nil {
		return err
	}
	t.conn.DelTable(t.table)
	return classify(t.conn.Flush())
}

// Close releases the netlink socket. It leaves the kernel state as it is.
// Calls after Close return an error.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.conn.CloseLasting()
}
