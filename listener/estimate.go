package listener

import (
	"net/netip"
	"time"
	"unsafe"

	"github.com/tknock/tknock/internal/memsize"
)

// MemoryEstimate is what a Tracker can hold at most, in bytes, by part:
// every bounded structure at its bound, whatever the traffic. It is an
// upper bound of the Go heap the tracker keeps alive, not of the memory
// it touches (the kernel backs the source stores' pages only as sources
// come). The figures are computed from the same sizes and constants the
// tracker allocates with (tracker.go, anchors.go, derivers.go,
// tracker_sources.go, replay.go, budget.go): a change there that is not
// reflected here fails TestEstimate*.
type MemoryEstimate struct {
	// Tables are the anchor tables: entries of 8 bytes, one per (user,
	// service, window) over 2*max(Skew, SkewDetect)+1 windows and the
	// back windows of GapMax, the per-port index of each protocol, the
	// per-slot windows and the 16 KiB anchor bitmap. Three of them: the
	// one in use, the next one, built ahead by Run, and a third that Run
	// builds at the following boundary while the owner has not taken the
	// previous one (an idle tracker; the third is then kept for reuse).
	Tables int
	// Cache is the anchor builder's: a ring of anchors per enrollment
	// slot (2 bytes a window) and its per-port counts.
	Cache int
	// Users are the users' validated parameters (private copies of their
	// secrets, services and excluded ports) and enrollment slots. Their
	// names and realms are the caller's strings, not counted.
	Users int
	// Reload is a second anchor state (Tables, Cache and Users again): a
	// reload (SetUsers, SetConfig, Prepare) builds the new one while the
	// old is in use, and the goroutine that calls Knock drops the old
	// only at its next knock, so an idle tracker holds both.
	Reload int
	// Sources are the per-source stores of Config.Capacity, allocated
	// whole by NewTracker.
	Sources int
	// Replay is the replay record full: Config.ReplayCapacity records, or
	// Config.ReplayPerUser for each user if that is fewer, and the
	// per-user counts, in maps whose tables may be as little as 7/16 full
	// after a split. (Records of users that a reload removed stay until
	// their windows pass, 11 windows at most: a reload that replaces
	// every user can exceed this bound for that long.)
	Replay int
	// Derivers is the deriver cache full: one Deriver (an HMAC state) per
	// user up to its bound, DeriverCacheBytes.
	Derivers int
	// Budget is the derivation budget's two tables (per source address,
	// per IPv6 /64) at their bound of 65 536 keys each.
	Budget int
	// SkewWatches are the sources watched for a clock skew (skew.go) at
	// their bound, SkewWatchBytes; none when detection is off.
	SkewWatches int
}

// Total is the sum of the parts.
func (m MemoryEstimate) Total() int {
	return m.Tables + m.Cache + m.Users + m.Reload + m.Sources + m.Replay + m.Derivers + m.Budget + m.SkewWatches
}

// anchorTables is the number of anchor tables of one builder that can be
// alive at once (MemoryEstimate.Tables).
const anchorTables = 3

// EstimateMemory returns what a Tracker of users under cfg can hold at
// most (see MemoryEstimate). cfg's zero fields take their defaults, as
// NewTracker's do; users are not validated (a user NewTracker would
// refuse is counted all the same). It is a sum over the users, without
// derivations: cheap enough for every reload.
func EstimateMemory(cfg Config, users []User) MemoryEstimate {
	cfg, _ = cfg.withDefaults()
	// The limits that NewTracker would enforce, so that a bad value
	// cannot make a figure negative or absurd.
	capacity := min(max(cfg.Capacity, MinCapacity), MaxCapacity)
	replayCap := min(max(cfg.ReplayCapacity, 1), MaxCapacity)
	records := min(replayCap, max(1, len(users))*max(1, cfg.ReplayPerUser))
	depth := min(max(cfg.depth(), 0), max(MaxSkew, MaxSkewDetect))

	var m MemoryEstimate
	slots, entries := 0, 0
	var lo, hi [2]int // per protocol: the users' lowest and highest knock port
	lo[0], lo[1] = 1<<16, 1<<16
	hi[0], hi[1] = -1, -1
	for i := range users {
		p := &users[i].Params
		n := len(p.Services)
		slots += n
		back := 0
		if p.Period > 0 {
			period := time.Duration(p.Period) * time.Second
			back = int((2*cfg.GapMax + period - 1) / period)
		}
		entries += n * (2*depth + 1 + back)
		if pi := protoIndex(p.Proto); pi >= 0 {
			lo[pi], hi[pi] = min(lo[pi], int(p.Range.Lo)), max(hi[pi], int(p.Range.Hi))
		}
		// newTrackerState's private copies of the slices.
		m.Users += memsize.Alloc(len(p.Secret)) + memsize.Alloc(n*int(unsafe.Sizeof(""))) +
			memsize.Alloc(len(p.Exclude)*int(unsafe.Sizeof(uint16(0))))
	}
	// A table (anchors.go, sort and buildLocked): the entries, the
	// per-slot windows (base) and, per protocol, its per-port index:
	// start (one more than the ports) and mid. The builder
	// (newAnchorBuilder): the rings, their offsets and first windows per
	// slot, and the live and back counts per port.
	const word = int(unsafe.Sizeof(uint32(0)))
	table := memsize.Alloc(int(unsafe.Sizeof(anchorTable{}))) +
		memsize.Alloc(entries*int(unsafe.Sizeof(anchorEnt{}))) +
		memsize.Alloc(slots*int(unsafe.Sizeof(int64(0))))
	m.Cache = memsize.Alloc(int(unsafe.Sizeof(anchorBuilder{}))) +
		memsize.Alloc(entries*int(unsafe.Sizeof(uint16(0)))) +
		memsize.Alloc((slots+1)*int(unsafe.Sizeof(int(0)))) +
		memsize.Alloc(slots*int(unsafe.Sizeof(int64(0))))
	for pi := range 2 {
		ports := max(0, hi[pi]-lo[pi]+1)
		table += memsize.Alloc((ports+1)*word) + memsize.Alloc(ports*word)
		m.Cache += 2 * memsize.Alloc(ports*word)
	}
	m.Tables = anchorTables * table

	// The user states, and the slots, appended one by one (their array
	// can be up to a quarter larger than needed).
	m.Users += int(unsafe.Sizeof(trackerState{})) +
		memsize.Alloc(len(users)*int(unsafe.Sizeof(userState{}))) +
		memsize.Slice(slots, int(unsafe.Sizeof(enrollSlot{})))

	m.Reload = m.Tables + m.Cache + m.Users
	m.Sources = tableBytes(capacity)

	// The replay record: keys of two strings (the user's own), a window
	// and an address, the user's period as the value; and the count of
	// records per user.
	m.Replay = memsize.Map(records, int(unsafe.Sizeof(replayKey{})), int(unsafe.Sizeof(int64(0)))) +
		memsize.Map(min(len(users), replayCap), int(unsafe.Sizeof("")), int(unsafe.Sizeof(int(0))))

	// The deriver cache: its slots and a Deriver per slot at most.
	cached := max(1, min(len(users), maxDerivers))
	m.Derivers = memsize.Alloc(cached*int(unsafe.Sizeof(deriverSlot{}))) + cached*(DeriverCacheBytes/maxDerivers)

	m.Budget = 2 * memsize.Map(maxBudgetKeys, int(unsafe.Sizeof(netip.Addr{})), int(unsafe.Sizeof(budgetState{})))
	if cfg.SkewDetect > cfg.Skew {
		m.SkewWatches = memsize.Alloc(maxSkewWatches*int(unsafe.Sizeof(skewWatch{}))) +
			memsize.Map(maxSkewWatches, int(unsafe.Sizeof(sourceKey{})), int(unsafe.Sizeof(watchPair{})))
	}
	return m
}
