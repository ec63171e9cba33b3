package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// User is one enrolled user: a name, used in events, and the parameters of
// its enrollment.
type User struct {
	Name   string
	Params totpseq.Params
}

// Config configures a Tracker. Start from DefaultConfig: the zero value of
// Skew and SkewDetect is taken as given (0), the zero value of the other
// fields means their default.
type Config struct {
	// Skew is the number of windows accepted on each side of the current
	// one (PROTOCOL.md section 3), 0..MaxSkew. Default 1.
	Skew int

	// SkewDetect is the largest window offset, on each side, at which a
	// completed sequence is reported as a probable clock skew (a ClockSkew
	// event; nothing opens): offsets Skew+1..SkewDetect. At most
	// MaxSkewDetect; a value <= Skew turns detection off. Default 5.
	// Detection costs anchor table memory (every enrolled service has
	// 2*max(Skew, SkewDetect)+2 windows in the table), and derivations
	// only when a source has knocked as many ports after an anchor of
	// such a window as its sequence has (skew.go).
	SkewDetect int

	// GapMax is the longest pause between two knocks of a sequence (rule
	// 5), up to MaxGap. Default 3s.
	GapMax time.Duration

	// SeqTimeout is the longest whole sequence, from its first knock to
	// its last, GapMax..MaxSeqTimeout. Default 10s.
	SeqTimeout time.Duration

	// Capacity is the number of sources tracked at most,
	// MinCapacity..MaxCapacity: a thirty-second of it (at least one) for
	// the sources past their anchor, the rest, rounded down to whole buckets,
	// for those that only matched an anchor (Stats.Capacity is the
	// result). Default DefaultCapacity, which keeps the state within
	// MaxTableBytes. It cannot change with SetConfig.
	Capacity int

	// ReplayCapacity bounds the record of accepted sequences, 1..MaxCapacity.
	// Default DefaultReplayCapacity.
	ReplayCapacity int

	// ReplayPerUser bounds the records of one user in the replay record,
	// 1..ReplayCapacity: one user's completions beyond it are refused
	// (UserQuota) while the others' still open. Default
	// DefaultReplayPerUser (at most ReplayCapacity).
	ReplayPerUser int

	// Anchors, if not nil, is called with the anchor ports of every
	// anchor table the tracker builds (AnchorPorts), before the table is
	// used, from the goroutine that built it: Prefilter.Publish's way in.
	// It must not call the tracker.
	Anchors func(AnchorPorts)

	// Reset, if not nil, is called with the source and capture time of
	// every knock that ended a source's attempt (rule 4: it dropped the
	// candidates the source tracked after an anchor, and advanced none:
	// Stats.Resets), from the goroutine that calls Knock: a failed
	// attempt, for the daemon's per-source events. A client that knocks
	// its own sequence never causes one (copies are duplicates). It must
	// be cheap, as a source that knows an anchor causes one every second
	// knock, and must not call the tracker.
	Reset func(src netip.Addr, at time.Time)

	// Now is the wall clock of the goroutine that Run starts to build the
	// anchor table of the next window boundary ahead of time. nil means
	// time.Now. Knocks are matched with their capture timestamps, never
	// with this clock.
	Now func() time.Time
}

// maxCandidates bounds the anchor table (8 bytes an entry): 10 million
// users with one service each under the defaults.
const maxCandidates = 1 << 27

// Limits of Config.
const (
	MaxSkewDetect = 10
	MaxGap        = time.Minute
	MaxSeqTimeout = 10 * time.Minute
	MaxCapacity   = 1 << 24
)

// DefaultConfig returns the defaults of PROTOCOL.md section 1: skew 1,
// gap_max 3s, seq_timeout 10s; clock skew detection up to 5 windows; the
// default capacities.
func DefaultConfig() Config {
	return Config{
		Skew:           1,
		SkewDetect:     5,
		GapMax:         3 * time.Second,
		SeqTimeout:     10 * time.Second,
		Capacity:       DefaultCapacity,
		ReplayCapacity: DefaultReplayCapacity,
	}
}

// Validate checks c as NewTracker and SetConfig would, the zero fields
// taking their defaults. The error joins a *ConfigError for every field
// out of its limits.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// ConfigError is a Config field out of its limits.
type ConfigError struct {
	Field string // the Config field, e.g. "GapMax"
	Value string // the value refused, e.g. "2m0s"
	Err   error  // what is wrong with it
}

func (e *ConfigError) Error() string {
	return "tracker: " + configWords[e.Field] + " " + e.Value + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// configWords names the fields of Config in messages.
var configWords = map[string]string{
	"Skew": "skew", "SkewDetect": "skew detection", "GapMax": "gap max", "SeqTimeout": "sequence timeout",
	"Capacity": "capacity", "ReplayCapacity": "replay capacity", "ReplayPerUser": "replay per user",
}

// withDefaults fills the zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.GapMax == 0 {
		c.GapMax = d.GapMax
	}
	if c.SeqTimeout == 0 {
		c.SeqTimeout = d.SeqTimeout
	}
	if c.Capacity == 0 {
		c.Capacity = d.Capacity
	}
	if c.ReplayCapacity == 0 {
		c.ReplayCapacity = d.ReplayCapacity
	}
	if c.ReplayPerUser == 0 {
		c.ReplayPerUser = min(DefaultReplayPerUser, c.ReplayCapacity)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Value: fmt.Sprint(value), Err: fmt.Errorf(format, args...)})
	}
	if c.Skew < 0 || c.Skew > MaxSkew {
		bad("Skew", c.Skew, "want 0..%d windows", MaxSkew)
	}
	if c.SkewDetect < 0 || c.SkewDetect > MaxSkewDetect {
		bad("SkewDetect", c.SkewDetect, "want 0..%d windows", MaxSkewDetect)
	}
	gapOK := c.GapMax >= 0 && c.GapMax <= MaxGap
	if !gapOK {
		bad("GapMax", c.GapMax, "want more than 0, at most %v", MaxGap)
	}
	if gapOK && c.SeqTimeout < c.GapMax || c.SeqTimeout > MaxSeqTimeout {
		bad("SeqTimeout", c.SeqTimeout, "want %v (gap max)..%v", c.GapMax, MaxSeqTimeout)
	}
	if c.Capacity < MinCapacity || c.Capacity > MaxCapacity {
		bad("Capacity", c.Capacity, "want %d..%d sources", MinCapacity, MaxCapacity)
	}
	if c.ReplayCapacity < 1 || c.ReplayCapacity > MaxCapacity {
		bad("ReplayCapacity", c.ReplayCapacity, "want 1..%d records", MaxCapacity)
	} else if c.ReplayPerUser < 1 || c.ReplayPerUser > c.ReplayCapacity {
		bad("ReplayPerUser", c.ReplayPerUser, "want 1..%d records (the replay capacity)", c.ReplayCapacity)
	}
	return c, errors.Join(errs...)
}

// depth is the number of windows on each side of the current one that the
// anchor table holds: max(Skew, SkewDetect).
func (c *Config) depth() int { return max(c.Skew, c.SkewDetect) }

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// Opened: a sequence completed inside the skew and was not used
	// before; the service is to be opened for the source.
	Opened EventKind = iota + 1
	// Replay: a sequence completed that was accepted before for the same
	// (user, service, window, source); nothing opens.
	Replay
	// Expired: a sequence completed after its window left the skew
	// (typically one started just before a window boundary); nothing
	// opens.
	Expired
	// ClockSkew: a sequence completed whose window was outside the skew,
	// up to SkewDetect windows away, when it started: the client's clock
	// is probably off by Offset windows. Nothing opens.
	ClockSkew
	// ReplayFull: a sequence completed inside the skew, but the replay
	// record is full of records that may still matter; nothing opens
	// rather than a record being forgotten.
	ReplayFull
	// UserQuota: a sequence completed inside the skew, but its user has
	// Config.ReplayPerUser records in the replay record already, all of
	// which may still matter; nothing opens (other users still can).
	UserQuota
)

// String returns "opened", "replay", "expired", "clock-skew",
// "replay-full", "user-quota" or "event(N)".
func (k EventKind) String() string {
	switch k {
	case Opened:
		return "opened"
	case Replay:
		return "replay"
	case Expired:
		return "expired"
	case ClockSkew:
		return "clock-skew"
	case ReplayFull:
		return "replay-full"
	case UserQuota:
		return "user-quota"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is a completed sequence. It never holds a port of a sequence.
type Event struct {
	Kind    EventKind
	User    string
	Service string
	Src     netip.Addr // the knocking source, unmapped, no zone
	Window  uint64     // the window the sequence was derived for
	Offset  int        // Window minus the user's window at Time
	Time    time.Time  // capture time of the last knock
}

// Stats are the counters of a Tracker since it was made.
type Stats struct {
	Knocks     uint64 // knocks given to Knock
	Ignored    uint64 // knocks without a valid source, protocol, port or time (before 1970, after 2242)
	Started    uint64 // knocks that matched an anchor (rule 1)
	Advanced   uint64 // candidates advanced (rule 2), the completing knock included
	Duplicates uint64 // knocks ignored as repeats of a port already matched (rule 3)
	Resets     uint64 // knocks that dropped a source's candidates and advanced none (rule 4)
	Timeouts   uint64 // candidates dropped by gap_max or seq_timeout (rule 5)
	Opened     uint64 // Opened events
	Replays    uint64 // Replay events
	Expired    uint64 // Expired events
	ClockSkews uint64 // ClockSkew events
	ReplayFull uint64 // ReplayFull events
	UserQuota  uint64 // UserQuota events
	Evictions  uint64 // sources pushed out of the full table
	Overflows  uint64 // candidates not tracked: a source already had the most it can hold
	Throttled  uint64 // knocks after an anchor not looked at: their source (or /64) had spent its derivation budget

	Tracked    int // sources tracked now
	Capacity   int // sources tracked at most
	Candidates int // entries of the current anchor table

	TableBuilds uint64        // anchor tables built, ahead of time or not
	TableBuild  time.Duration // how long the latest one took
}

// trackerState is what a reload replaces as a whole.
type trackerState struct {
	cfg    Config // with defaults
	users  []userState
	slots  []enrollSlot
	b      *anchorBuilder
	tab    *anchorTable
	ranges []inet.Range
}

// counters are the Stats counters, readable from any goroutine. The owner
// counts in tally and publishes it once per batch of knocks (publish), so
// the packet path makes a few atomic additions per batch, not several per
// knock.
type counters struct {
	knocks, ignored, started, advanced, duplicates, resets, timeouts atomic.Uint64
	opened, replays, expired, clockSkews, replayFull, userQuota      atomic.Uint64
	evictions, overflows, throttled, builds                          atomic.Uint64
	tracked, candidates, buildTime                                   atomic.Int64
}

// tally is the owner's count of the counters since its latest publish.
// rare is set when a counter other than knocks, started and evictions (the
// counters of a flood) may be non-zero.
type tally struct {
	knocks, ignored, started, advanced, duplicates, resets, timeouts uint64
	opened, replays, expired, clockSkews, replayFull, userQuota      uint64
	evictions, overflows, throttled                                  uint64
	rare                                                             bool
}

// publish adds the tally to the counters and stores the tracked count.
func (t *Tracker) publish() {
	c := &t.tally
	pub := func(n *uint64, a *atomic.Uint64) {
		if *n != 0 {
			a.Add(*n)
			*n = 0
		}
	}
	pub(&c.knocks, &t.n.knocks)
	pub(&c.started, &t.n.started)
	pub(&c.evictions, &t.n.evictions)
	if c.rare {
		c.rare = false
		pub(&c.ignored, &t.n.ignored)
		pub(&c.advanced, &t.n.advanced)
		pub(&c.duplicates, &t.n.duplicates)
		pub(&c.resets, &t.n.resets)
		pub(&c.timeouts, &t.n.timeouts)
		pub(&c.opened, &t.n.opened)
		pub(&c.replays, &t.n.replays)
		pub(&c.expired, &t.n.expired)
		pub(&c.clockSkews, &t.n.clockSkews)
		pub(&c.replayFull, &t.n.replayFull)
		pub(&c.userQuota, &t.n.userQuota)
		pub(&c.overflows, &t.n.overflows)
		pub(&c.throttled, &t.n.throttled)
	}
	if n := int64(t.anc.n + t.src.n); n != t.trackedPub {
		t.trackedPub = n
		t.n.tracked.Store(n)
	}
}

// Tracker follows the knocks of every source and reports completed
// sequences: PROTOCOL.md section 3, rules 1 to 6.
//
// Knock must be called from one goroutine at a time: the owner, normally
// Run. SetUsers, SetConfig, Stats and Ranges are safe from any goroutine: a
// reload is validated and its anchor table built by the caller, then
// handed over and taken into use by the owner at its next Knock, so the
// owner never waits for a reload and never shares its state.
//
// Per-source state is bounded by Config.Capacity, in two stores
// (tracker_sources.go): one for the sources that only matched an anchor,
// which a flood fills, and one for the sources past their anchor, which no
// anchor-only source can evict.
type Tracker struct {
	// Owned by the goroutine that calls Knock.
	st         *trackerState
	derivers   deriverCache // the recently used users' Derivers
	derived    uint64       // bound port derivations made (tests)
	skew       skewWatches  // sources watched for a clock skew (skew.go)
	budget     budget       // derivations per source and per /64
	hash       hasher
	anc        anchorStore
	src        sourceTable // the advanced sources
	replay     replayRecord
	emit       func(Event)
	gap, seq   int64 // Unix nanoseconds
	tally      tally
	trackedPub int64
	sink       uint32 // keeps the loads of the touch pass
	items      [maxBatch]batchItem

	ahead  atomic.Pointer[anchorTable]  // built ahead by Run's goroutine
	staged atomic.Pointer[trackerState] // a reload the owner has not taken yet
	latest atomic.Pointer[trackerState] // the newest state, staged or not

	reloadMu sync.Mutex // serialises SetUsers and SetConfig

	n counters
}

// NewTracker returns a tracker of users under cfg that calls emit for every
// completed sequence, from the goroutine that calls Knock. now is the time
// of its first anchor table, normally the current time. emit must not call
// Knock.
func NewTracker(cfg Config, users []User, now time.Time, emit func(Event)) (*Tracker, error) {
	if emit == nil {
		return nil, errors.New("tracker: nil event function")
	}
	st, err := newTrackerState(cfg, users, now)
	if err != nil {
		return nil, err
	}
	nb, ways, advanced := capacities(st.cfg.Capacity)
	t := &Tracker{
		emit:   emit,
		hash:   newHasher(),
		anc:    newAnchorStore(nb, ways),
		src:    newSourceTable(advanced),
		replay: newReplayRecord(st.cfg.ReplayCapacity, st.cfg.ReplayPerUser),
	}
	t.anc.swept, _ = unixNano(now)
	t.latest.Store(st)
	t.adopt(st)
	t.n.builds.Add(1)
	t.n.buildTime.Store(int64(st.tab.took))
	return t, nil
}

// newTrackerState validates cfg and users and builds their anchor table
// for now.
func newTrackerState(cfg Config, users []User, now time.Time) (*trackerState, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ns, ok := unixNano(now)
	if !ok {
		return nil, fmt.Errorf("tracker: time %v: want a time from 1970 to 2242", now)
	}
	st := &trackerState{cfg: cfg, users: make([]userState, len(users))}
	names := make(map[string]bool, len(users))
	for i, u := range users {
		if u.Name == "" {
			return nil, fmt.Errorf("tracker: user %d: empty name", i)
		}
		if names[u.Name] {
			return nil, fmt.Errorf("tracker: user %q: listed twice", u.Name)
		}
		names[u.Name] = true
		p := u.Params
		p.Secret = slices.Clone(p.Secret)
		p.Services = slices.Clone(p.Services)
		p.Exclude = slices.Clone(p.Exclude)
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("tracker: user %q: %w", u.Name, err)
		}
		back := int((2*cfg.GapMax + time.Duration(p.Period)*time.Second - 1) / (time.Duration(p.Period) * time.Second))
		st.users[i] = userState{name: u.Name, params: p, period: int64(p.Period), back: back, first: len(st.slots)}
		for _, svc := range p.Services {
			st.slots = append(st.slots, enrollSlot{user: int32(i), service: svc})
		}
	}
	total := 0
	for i := range st.users {
		total += len(st.users[i].params.Services) * (2*cfg.depth() + 1 + st.users[i].back)
	}
	if total > maxCandidates {
		return nil, fmt.Errorf("tracker: %d users: %d anchor table entries, more than %d", len(users), total, maxCandidates)
	}
	st.ranges = unionRanges(st.users)
	st.b = newAnchorBuilder(st.users, st.slots, cfg.depth())
	st.b.publish = cfg.Anchors
	st.tab = st.b.build(ns)
	return st, nil
}

// unionRanges merges the knock ranges of users per protocol.
func unionRanges(users []userState) []inet.Range {
	rs := make([]inet.Range, len(users))
	for i := range users {
		p := &users[i].params
		rs[i] = inet.Range{Proto: p.Proto, Lo: p.Range.Lo, Hi: p.Range.Hi}
	}
	return inet.Merge(rs)
}

// Ranges returns the union of the users' knock ranges per protocol,
// sorted, for the capture filter and the decoder. After SetUsers it
// returns the new users' ranges at once. Safe from any goroutine.
func (t *Tracker) Ranges() []inet.Range { return slices.Clone(t.latest.Load().ranges) }

// SetUsers replaces the enrolled users (a reload). It validates users and
// builds their anchor table for now, then hands them to the goroutine
// that calls Knock, which takes them into use at its next knock: the
// in-progress sequences of users that remain with the same parameters are
// kept, and so is the replay record. On error nothing changes. Safe from
// any goroutine.
func (t *Tracker) SetUsers(users []User, now time.Time) error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	st, err := newTrackerState(t.latest.Load().cfg, users, now)
	if err != nil {
		return err
	}
	t.stage(st)
	return nil
}

// SetConfig replaces the skew, skew detection, gap and sequence timeouts
// and the replay capacity (a reload), keeping the users, like SetUsers.
// Capacity cannot change: a different value is an error. Safe from any
// goroutine.
func (t *Tracker) SetConfig(cfg Config, now time.Time) error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	st, err := t.stateFor(cfg, t.latest.Load().userList(), now)
	if err != nil {
		return err
	}
	t.stage(st)
	return nil
}

// stateFor builds the state for cfg and users; t.reloadMu is held.
func (t *Tracker) stateFor(cfg Config, users []User, now time.Time) (*trackerState, error) {
	cur := t.latest.Load()
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Capacity != cur.cfg.Capacity {
		return nil, fmt.Errorf("tracker: capacity %d: cannot change from %d without a restart", cfg.Capacity, cur.cfg.Capacity)
	}
	return newTrackerState(cfg, users, now)
}

// Staged is a tracker state that Prepare built for a reload: validated,
// its anchor table built, not yet in use.
type Staged struct{ st *trackerState }

// Ranges returns the knock ranges of the staged users (see Tracker.Ranges).
func (s *Staged) Ranges() []inet.Range { return slices.Clone(s.st.ranges) }

// Prepare builds the state for cfg and users that SetConfig and SetUsers
// would, in one step and without changing the tracker: on error nothing
// changed, and the state is put in use by Commit. cfg.Anchors is called
// with the staged table's anchors already. Safe from any goroutine.
func (t *Tracker) Prepare(cfg Config, users []User, now time.Time) (*Staged, error) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	st, err := t.stateFor(cfg, users, now)
	if err != nil {
		return nil, err
	}
	return &Staged{st: st}, nil
}

// Commit puts s in use: the goroutine that calls Knock takes it at its
// next knock, keeping the in-progress sequences of users that remain with
// the same parameters, and the replay record (as SetUsers). It cannot
// fail. Safe from any goroutine.
func (t *Tracker) Commit(s *Staged) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	t.stage(s.st)
}

// userList returns the users of st as given to SetUsers.
func (st *trackerState) userList() []User {
	us := make([]User, len(st.users))
	for i := range st.users {
		us[i] = User{Name: st.users[i].name, Params: st.users[i].params}
	}
	return us
}

func (t *Tracker) stage(st *trackerState) {
	t.n.builds.Add(1)
	t.n.buildTime.Store(int64(st.tab.took))
	t.latest.Store(st)
	t.staged.Store(st)
}

// sameDerivation reports whether two enrollments derive the same
// sequences.
func sameDerivation(a, b *totpseq.Params) bool {
	return string(a.Secret) == string(b.Secret) && a.Realm == b.Realm && a.Period == b.Period &&
		a.Length == b.Length && a.Range == b.Range && slices.Equal(a.Exclude, b.Exclude) &&
		a.Proto == b.Proto && a.V6Prefix == b.V6Prefix
}

// adopt takes st into use. Called by the owner.
func (t *Tracker) adopt(st *trackerState) {
	old := t.st
	t.st = st
	t.gap, t.seq = int64(st.cfg.GapMax), int64(st.cfg.SeqTimeout)
	t.replay.capacity = st.cfg.ReplayCapacity
	t.replay.userCap = st.cfg.ReplayPerUser
	t.n.candidates.Store(int64(len(st.tab.ents)))
	t.derivers = newDeriverCache(len(st.users)) // users' indices change: made again on demand
	t.skew.reset()
	if old == nil {
		return
	}
	// Map the old slots to the new ones: same user name, same derivation,
	// same service. Everything else in progress is dropped. The anchor-only
	// sources need nothing: their candidates are looked up in the table
	// of the moment.
	byName := make(map[string]int, len(st.users))
	for i := range st.users {
		byName[st.users[i].name] = i
	}
	remap := make([]int64, len(old.slots))
	for s, sl := range old.slots {
		remap[s] = -1
		ou := &old.users[sl.user]
		i, ok := byName[ou.name]
		if !ok || !sameDerivation(&ou.params, &st.users[i].params) {
			continue
		}
		nu := &st.users[i]
		if j := slices.Index(nu.params.Services, sl.service); j >= 0 {
			remap[s] = int64(nu.first + j)
		}
	}
	for e := range t.src.ents {
		ent := &t.src.ents[e]
		if !ent.used {
			continue
		}
		kept := 0
		adv := &t.src.adv[e]
		for j := range int(ent.nadv) {
			c := adv[j]
			if s := remap[c.slot]; s >= 0 {
				c.slot = uint32(s)
				adv[kept] = c
				kept++
			}
		}
		ent.nadv = uint8(kept)
		if kept == 0 {
			kh := t.hash.hash(&ent.key)
			t.settle(int32(e), kh, ent.gtime)
		}
	}
	old.b.recycle(old.tab)
	t.publish()
}

// Stats returns the counters. Safe from any goroutine.
func (t *Tracker) Stats() Stats {
	return Stats{
		Knocks:      t.n.knocks.Load(),
		Ignored:     t.n.ignored.Load(),
		Started:     t.n.started.Load(),
		Advanced:    t.n.advanced.Load(),
		Duplicates:  t.n.duplicates.Load(),
		Resets:      t.n.resets.Load(),
		Timeouts:    t.n.timeouts.Load(),
		Opened:      t.n.opened.Load(),
		Replays:     t.n.replays.Load(),
		Expired:     t.n.expired.Load(),
		ClockSkews:  t.n.clockSkews.Load(),
		ReplayFull:  t.n.replayFull.Load(),
		UserQuota:   t.n.userQuota.Load(),
		Evictions:   t.n.evictions.Load(),
		Overflows:   t.n.overflows.Load(),
		Throttled:   t.n.throttled.Load(),
		Tracked:     int(t.n.tracked.Load()),
		Capacity:    t.anc.capacity() + len(t.src.ents),
		Candidates:  int(t.n.candidates.Load()),
		TableBuilds: t.n.builds.Load(),
		TableBuild:  time.Duration(t.n.buildTime.Load()),
	}
}

// unixNano converts a capture time to Unix nanoseconds; false for times
// before 1970 or from 2242 on (bogus timestamps).
func unixNano(t time.Time) (int64, bool) {
	s := t.Unix()
	if s < 0 || s >= 1<<33 {
		return 0, false
	}
	return t.UnixNano(), true
}

// table returns the anchor table for a knock at ns, and whether ns is
// inside its interval (the fast case). A knock slightly before the
// interval (out-of-order timestamps, by up to GapMax) is served by the
// same table, looking candidates up by window.
func (t *Tracker) table(ns int64) (*anchorTable, bool) {
	tab := t.st.tab
	if ns >= tab.from && ns < tab.until {
		return tab, true
	}
	if ns < tab.from && ns >= tab.from-t.gap {
		return tab, false
	}
	// The build-ahead goroutine leaves its table in t.ahead while it holds
	// the builder's lock: once we hold it, a table being built ahead is
	// there.
	b := t.st.b
	b.mu.Lock()
	next := t.ahead.Swap(nil)
	if next == nil || next.owner != b || ns < next.from || ns >= next.until {
		if next != nil {
			next.owner.recycle(next)
		}
		next = b.buildLocked(ns, runtime.GOMAXPROCS(0)) // the knock waits: every CPU
		t.n.builds.Add(1)
		t.n.buildTime.Store(int64(next.took))
	}
	b.mu.Unlock()
	tab.owner.recycle(tab)
	t.st.tab = next
	t.n.candidates.Store(int64(len(next.ents)))
	return next, true
}

// anchored reports whether port is the anchor of a candidate considered at
// ns (rule 1).
func (t *Tracker) anchored(tab *anchorTable, fast bool, pi int, port uint16, ns int64) bool {
	if fast {
		return tab.anchored(pi, port)
	}
	d := int64(t.st.cfg.depth())
	for _, e := range tab.all(pi, port) {
		u := &t.st.users[t.st.slots[e.slot].user]
		if off := tab.window(e) - windowAt(ns, u.period); off >= -d && off <= d {
			return true
		}
	}
	return false
}

// maxBatch is the number of knocks a batch processes together.
const maxBatch = 32

// Knock processes one knock: the hot path. It must be called from one
// goroutine at a time, with knocks in capture order (small reorderings are
// tolerated). It calls the event function for every sequence the knock
// completes.
func (t *Tracker) Knock(k Knock) {
	// k itself, not a copy: a caller that built k field by field leaves
	// narrow stores that a whole-struct copy would read with wide loads,
	// which the CPU cannot forward from the store buffer: they wait until
	// it drains, that is for the previous knock's state writes, which can
	// miss the cache.
	t.knockBatch(unsafe.Slice(&k, 1))
}

// knockBatch processes knocks, in order, as Knock does one by one. The
// knocks of a batch are hashed first and the cache lines of their state
// read before any is applied, so that their cache misses overlap rather
// than follow one another.
func (t *Tracker) knockBatch(ks []Knock) {
	if t.staged.Load() != nil {
		if st := t.staged.Swap(nil); st != nil {
			t.adopt(st)
		}
	}
	for len(ks) > 0 {
		n := min(len(ks), maxBatch)
		t.batch(ks[:n], t.items[:n])
		ks = ks[n:]
	}
	t.publish()
}

// batchItem is what the first pass of a batch finds about a knock.
type batchItem struct {
	key sourceKey
	kh  keyHash
	src netip.Addr // unmapped, no zone
	ns  int64
	pi  int
	ok  bool
}

// batch processes ks (at most maxBatch) with items as scratch space.
func (t *Tracker) batch(ks []Knock, items []batchItem) {
	t.tally.knocks += uint64(len(ks))
	advanced := t.src.n > 0
	sink := uint32(0)
	for i := range ks {
		k, it := &ks[i], &items[i]
		ns, ok := unixNano(k.Time)
		pi := protoIndex(k.Proto)
		src := k.Src.Unmap()
		if !ok || pi < 0 || !src.IsValid() || k.Port == 0 {
			it.ok = false
			continue
		}
		if src.Zone() != "" {
			src = src.WithZone("")
		}
		it.ok, it.src, it.ns, it.pi = true, src, ns, pi
		it.key = newSourceKey(src, k.Proto)
		it.kh = t.hash.hash(&it.key)
	}
	// The loads of the cache lines, in a loop of their own: a few
	// instructions each, so that the CPU has them all in flight at once.
	for i := range items {
		if it := &items[i]; it.ok {
			sink += t.anc.touch(it.kh)
			if advanced {
				sink += t.src.touch(uint32(it.kh.h))
			}
		}
	}
	t.sink += sink
	for i := range ks {
		if !items[i].ok {
			t.tally.ignored++
			t.tally.rare = true
			continue
		}
		t.knock(&ks[i], &items[i])
	}
}

// knock applies rules 1 to 6 to a valid knock.
func (t *Tracker) knock(k *Knock, it *batchItem) {
	ns := it.ns
	tab, fast := t.table(ns)
	if d := ns - t.anc.swept; d >= sweepEvery || d <= -sweepEvery {
		t.anc.sweep(ns, t.gap)
	}
	t.skew.took = false
	if len(t.skew.idx) > 0 {
		t.skewStep(&it.key, k.Port, tab, it.pi, it.src, k.Time, ns)
	}
	var (
		done  [maxDone]candidate
		ndone int
	)
	if t.src.n > 0 {
		if e := t.src.lookup(&it.key, uint32(it.kh.h)); e >= 0 {
			ent := &t.src.ents[e]
			ndone = t.step(ent, &t.src.adv[e], tab, fast, it.pi, k, it.src, ns, &done)
			if ent.nadv > 0 {
				t.src.touchLRU(e)
			} else {
				t.settle(e, it.kh, ns)
			}
			t.completeAll(done[:ndone], it.src, k.Time, ns)
			return
		}
	}
	b, tag := t.anc.where(it.kh)
	w, victim, oldest := t.anc.find(b, tag, ns)
	if w < 0 {
		// A new source: rule 1 only, one array look-up, no HMAC.
		if !t.anchored(tab, fast, it.pi, k.Port, ns) {
			return
		}
		if t.anc.put(b, victim, oldest, tag, k.Port, ns, ns) {
			t.tally.evictions++
		}
		t.tally.started++
		return
	}
	rec := t.anc.way(b, w)
	ent := tracked{key: it.key, gport: wayPort(rec), gtime: wayTime(rec, ns)}
	var adv advSet
	ndone = t.step(&ent, &adv, tab, fast, it.pi, k, it.src, ns, &done)
	switch {
	case ent.nadv > 0:
		// Past its anchor: to the advanced store.
		t.anc.free(b, w)
		e, evicted := t.src.insert(&it.key, uint32(it.kh.h))
		if evicted {
			t.tally.evictions++
		}
		ne := &t.src.ents[e]
		ne.gport, ne.gtime, ne.nadv = ent.gport, ent.gtime, ent.nadv
		t.src.adv[e] = adv
	case ent.gport != 0:
		t.anc.set(b, w, tag, ent.gport, ent.gtime, ns)
	default:
		t.anc.free(b, w)
	}
	t.completeAll(done[:ndone], it.src, k.Time, ns)
}

// settle finds advanced source e a place after it lost its last candidate
// past its anchor: the anchor store if it has an anchor-only group
// (stamped now), else none.
func (t *Tracker) settle(e int32, kh keyHash, now int64) {
	ent := &t.src.ents[e]
	gport, gtime := ent.gport, ent.gtime
	t.src.remove(e)
	if gport == 0 {
		return
	}
	b, tag := t.anc.where(kh)
	if t.anc.insert(b, tag, gport, gtime, now) {
		t.tally.evictions++
	}
}

// completeAll applies rule 6 to the candidates a knock completed.
func (t *Tracker) completeAll(done []candidate, src netip.Addr, at time.Time, ns int64) {
	for i := range done {
		t.complete(&done[i], src, at, ns)
	}
}

// step applies rules 1 to 5 to a knock from the tracked source ent, and
// puts the candidates it completes in done; it returns their number.
func (t *Tracker) step(ent *tracked, adv *advSet, tab *anchorTable, fast bool, pi int, k *Knock, src netip.Addr, ns int64, done *[maxDone]candidate) int {
	port := k.Port
	t.tally.rare = true // any counter may change

	// Rule 5: drop what timed out.
	if ent.gport != 0 && ns-ent.gtime > t.gap {
		ent.gport = 0
		t.tally.timeouts++
	}
	for j := 0; j < int(ent.nadv); {
		c := &adv[j]
		if ns-c.last > t.gap || ns-c.start > t.seq {
			// A completed candidate has served its purpose: its end is
			// no timeout.
			if !t.completed(c) {
				t.tally.timeouts++
			}
			ent.removeAdv(adv, j)
			continue
		}
		j++
	}

	// Rules 2 and 3 for the candidates past their anchor. Completed ones
	// are moved to done.
	var (
		ndone             int
		progress, dropped bool
	)
	for j := 0; j < int(ent.nadv); {
		c := &adv[j]
		u := &t.st.users[t.st.slots[c.slot].user]
		if !u.relevant(k.Proto, port) {
			j++
			continue
		}
		switch i, matched := c.match(port, u.params.Length-1); {
		case matched:
			t.tally.duplicates++
			progress = true
		case i >= 0:
			c.seen |= 1 << i
			c.step++
			c.last = ns
			t.tally.advanced++
			progress = true
			if int(c.step) == u.params.Length {
				// Completed (rule 6); it stays tracked until rule 5 or
				// a reset drops it, so that the copies of its ports in
				// the client's later rounds are duplicates, not a
				// replay.
				done[ndone] = *c
				ndone++
			}
		default:
			ent.removeAdv(adv, j)
			dropped = true
			continue
		}
		j++
	}

	// Rules 2 and 3 for the anchor-only candidates: derive their bound
	// ports for this source now (lazily: a flood of single knocks at anchor
	// ports costs no HMAC).
	if ent.gport != 0 {
		if port == ent.gport {
			t.tally.duplicates++
			progress = true
		} else if relevant, advanced := t.advanceAnchored(ent, adv, tab, k, src, ns, done, &ndone); relevant {
			ent.gport = 0
			if advanced {
				progress = true
			} else {
				dropped = true
			}
		}
	}
	if dropped && !progress {
		t.tally.resets++
		if f := t.st.cfg.Reset; f != nil {
			f(src, k.Time)
		}
	}

	// Rule 1, also after a reset (rule 4).
	if port != ent.gport && t.anchored(tab, fast, pi, port, ns) {
		ent.gport, ent.gtime = port, ns
		t.tally.started++
	}
	return ndone
}

// advanceAnchored applies a knock to ent's anchor-only candidates: those
// that have it among their bound ports (in any place: rule 2) move past
// their anchor (and to done when the sequence has two ports), unless ent
// tracks them past their anchor already. It reports whether the knock was
// relevant to any of them (then they are all dropped), and whether any
// advanced.
//
// The candidates are those of the current table at ent's anchor port.
// When the anchor knock was inside the table's interval, its live
// candidates are exactly those whose window was within the considered
// range then, with the offsets they had then; otherwise (the table was
// replaced at a window boundary since) every candidate of the port is
// looked at by its window at the anchor knock. Only the candidates within
// the skew are derived here; those outside it, which can only report a
// clock skew, make the source watched instead (skew.go).
func (t *Tracker) advanceAnchored(ent *tracked, adv *advSet, tab *anchorTable, k *Knock, src netip.Addr, ns int64, done *[maxDone]candidate, ndone *int) (relevant, advanced bool) {
	pi := protoIndex(k.Proto)
	filter := ent.gtime < tab.from || ent.gtime >= tab.until
	ents := tab.live(pi, ent.gport)
	if filter {
		ents = tab.all(pi, ent.gport)
	}
	d, skew := int64(t.st.cfg.depth()), int64(t.st.cfg.Skew)
	// offset returns candidate a's window offset at the anchor knock, and
	// whether a is within the considered range.
	offset := func(a anchorEnt, u *userState) (int64, bool) {
		if !filter {
			return int64(a.off), true
		}
		off := tab.window(a) - windowAt(ent.gtime, u.period)
		return off, off >= -d && off <= d
	}
	// The derivations this knock needs, charged to the source's budget
	// (budget.go) before any is made: all or none, so that what happens
	// does not depend on the candidates' order. A source that cannot
	// afford one is refused before the candidates are walked.
	if t.budget.spent(src, ns) {
		t.tally.throttled++
		return true, false
	}
	need := 0
	var skewLens uint32 // bit L: a candidate outside the skew, relevant, of Length L
	for _, a := range ents {
		sl := &t.st.slots[a.slot]
		u := &t.st.users[sl.user]
		off, ok := offset(a, u)
		if !ok || !u.relevant(k.Proto, k.Port) {
			continue
		}
		if off < -skew || off > skew {
			skewLens |= 1 << u.params.Length
			continue
		}
		if !tracking(adv[:ent.nadv], a.slot, tab.window(a)) && !tracking(done[:*ndone], a.slot, tab.window(a)) {
			need++
		}
	}
	if skewLens != 0 && t.skewStart(&ent.key, ent.gport, ent.gtime, k.Port, skewLens, tab, pi, src, k.Time, ns) {
		// Watched: the anchor-only group is spent as if its candidates
		// outside the skew had advanced; whether they did is known when
		// the watch has as many ports as they have (skewCheck).
		relevant, advanced = true, true
	}
	if need > 0 && !t.budget.take(src, need, ns) {
		t.tally.throttled++
		return true, false // as a knock that continues none of them: a reset
	}
	var buf [totpseq.MaxLength - 1]uint16
	for _, a := range ents {
		sl := &t.st.slots[a.slot]
		u := &t.st.users[sl.user]
		off, ok := offset(a, u)
		if !ok || off < -skew || off > skew || !u.relevant(k.Proto, k.Port) {
			continue
		}
		relevant = true
		w := tab.window(a)
		if tracking(adv[:ent.nadv], a.slot, w) || tracking(done[:*ndone], a.slot, w) {
			continue // tracked past its anchor already (rule 1): no HMAC
		}
		dv := t.deriver(sl.user)
		if dv == nil {
			continue
		}
		t.derived++
		bound, err := dv.AppendBound(buf[:0], sl.service, uint64(w), ent.gport, src)
		if err != nil {
			continue
		}
		i := slices.Index(bound, k.Port)
		if i < 0 {
			continue
		}
		advanced = true
		t.tally.advanced++
		c := candidate{
			window: w,
			start:  ent.gtime,
			last:   ns,
			slot:   a.slot,
			anchor: ent.gport,
			step:   2,
			seen:   1 << i,
		}
		copy(c.bound[:], bound)
		if u.params.Length == 2 {
			if *ndone == len(done) {
				t.tally.overflows++
				continue
			}
			done[*ndone] = c
			*ndone++
		}
		t.addAdv(ent, adv, &c) // completed or not: see step
	}
	return relevant, advanced
}

// tracking reports whether cs holds the candidate of slot in window w: an
// anchor knocked again after its candidate advanced starts an anchor-only
// group (rule 1) that must not track that candidate a second time.
func tracking(cs []candidate, slot uint32, w int64) bool {
	for i := range cs {
		if cs[i].slot == slot && cs[i].window == w {
			return true
		}
	}
	return false
}

// maxDone bounds the sequences one knock completes: those past their
// anchor, and two more that have only two ports.
const maxDone = maxAdvanced + 2

// addAdv adds c to ent's candidates past their anchor, within maxAdvanced.
// When they are full, a completed candidate (kept only to absorb copies)
// makes room; else c is not tracked (an overflow).
func (t *Tracker) addAdv(ent *tracked, adv *advSet, c *candidate) {
	if int(ent.nadv) < maxAdvanced {
		adv[ent.nadv] = *c
		ent.nadv++
		return
	}
	for j := range adv {
		if t.completed(&adv[j]) {
			adv[j] = *c
			return
		}
	}
	t.tally.overflows++
}

// completed reports whether c matched all its ports: it is kept after its
// completion to absorb copies (rule 3).
func (t *Tracker) completed(c *candidate) bool {
	return int(c.step) == t.st.users[t.st.slots[c.slot].user].params.Length
}

// deriver returns user i's Deriver, made when needed; nil only if its
// parameters, validated when the users were set, were rejected.
func (t *Tracker) deriver(i int32) *totpseq.Deriver {
	return t.derivers.get(i, &t.st.users[i].params)
}

// complete applies rule 6 to a candidate that matched all its ports.
func (t *Tracker) complete(c *candidate, src netip.Addr, at time.Time, ns int64) {
	sl := &t.st.slots[c.slot]
	u := &t.st.users[sl.user]
	off := c.window - windowAt(ns, u.period)
	ev := Event{User: u.name, Service: sl.service, Src: src, Window: uint64(c.window), Offset: int(off), Time: at}
	skew := int64(t.st.cfg.Skew)
	switch {
	case c.skewOnly:
		ev.Kind = ClockSkew
		t.tally.clockSkews++
	case off < -skew || off > skew:
		ev.Kind = Expired
		t.tally.expired++
	default:
		ip, err := totpseq.IP16(src, u.params.V6Prefix)
		if err != nil {
			return // not reached: src is valid
		}
		switch t.replay.add(replayKey{user: u.name, service: sl.service, window: c.window, ip: ip}, u.period, ns) {
		case replayNew:
			ev.Kind = Opened
			t.tally.opened++
		case replaySeen:
			ev.Kind = Replay
			t.tally.replays++
		case replayQuota:
			ev.Kind = UserQuota
			t.tally.userQuota++
		default:
			ev.Kind = ReplayFull
			t.tally.replayFull++
		}
	}
	t.emit(ev)
}
