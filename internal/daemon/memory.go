package daemon

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/memsize"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
	"github.com/tknock/tknock/totpseq"
)

// The daemon's memory (memory_limit in deploy/tknockd.toml). EstimateMemory
// bounds what a daemon of a configuration and its users can use, every
// bounded table at its bound; the daemon refuses to start, or to take a
// reload, whose estimate exceeds memory_limit, and gives the Go runtime
// the limit as its soft limit (runtime/debug.SetMemoryLimit), less the
// resident memory the runtime does not count: the program's code and the
// capture rings.

// Fixed parts, measured on an idle daemon with one user (linux/amd64,
// Go 1.26): 18 MiB resident, of which 11.5 MiB of code and read-only
// data, 2 MiB of capture ring, 4 MiB of anonymous memory (heap, stacks,
// the runtime's own).
const (
	// codeBytes is the program's code and read-only data, resident while
	// it runs: the Go runtime does not count it.
	codeBytes = 12 << 20
	// runtimeBytes is the Go runtime, the goroutines' stacks and the
	// daemon's structures of a fixed size.
	runtimeBytes = 4 << 20
	// overheadShare: the allocator's metadata and its fragmentation are
	// at most 1/overheadShare of the heap.
	overheadShare = 32
)

// Memory is the estimate of a daemon's memory by part, in bytes
// (EstimateMemory): an upper bound of its resident memory, every bounded
// table at its bound and a reload under way. The parts of the Go heap are
// upper bounds of what the heap holds (tested against it); the Go
// runtime's garbage above them is what its soft limit keeps in check.
type Memory struct {
	Tracker listener.MemoryEstimate // the tracker's parts
	// Users are the enrollments in force (config.LoadUsers): each with
	// its file's text, which the parsed strings share.
	Users int
	// Reload is a reload's: the enrollments read again, and the list of
	// them the tracker gets, while those in force are kept.
	Reload int
	// Failures are the failed attempts per source (failWatch) at their
	// bound, 65 536 sources.
	Failures int
	// Openings are the samplers of the "access opened" lines, one per
	// user who opened, up to 65 536.
	Openings int
	// ReplayFile is the replay record's copy for state_dir (0 without):
	// its lines since the last rewrite, at most twice the live records,
	// and the file's text as a rewrite or the start holds it.
	ReplayFile int
	// Overhead is the allocator's metadata and fragmentation.
	Overhead int
	// Rings are the capture rings, one per interface (one for all of
	// them): kernel memory mapped into the process.
	Rings int
	// Base is the program's code and the Go runtime.
	Base int

	users, interfaces, capacity int // for String
}

// plural writes n things.
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// Total is the sum of the parts.
func (m Memory) Total() int64 {
	return int64(m.Tracker.Total() + m.Users + m.Reload + m.Failures + m.Openings + m.ReplayFile + m.Overhead + m.Rings + m.Base)
}

// memoryPart is a part of the estimate as messages show it.
type memoryPart struct {
	name   string
	bytes  int
	detail string // after the size
}

// parts returns the estimate's parts as messages group them, largest
// first.
func (m Memory) parts() []memoryPart {
	t := m.Tracker
	ps := []memoryPart{
		{"anchor tables", t.Tables + t.Cache, " for " + plural(m.users, "user")},
		{"users", t.Users + m.Users, ""},
		{"reload", t.Reload + m.Reload, " (the users and tables again while a reload builds them)"},
		{"source state", t.Sources, fmt.Sprintf(" for state_capacity %d", m.capacity)},
		{"replay record", t.Replay + m.ReplayFile, ""},
		{"derivation budget", t.Budget, ""},
		{"deriver cache", t.Derivers, ""},
		{"clock skew watches", t.SkewWatches, ""},
		{"failed attempts", m.Failures, ""},
		{"open line samplers", m.Openings, ""},
		{"capture rings", m.Rings, " for " + plural(m.interfaces, "interface")},
		{"code and runtime", m.Base + m.Overhead, ""},
	}
	slices.SortStableFunc(ps, func(a, b memoryPart) int { return cmp.Compare(b.bytes, a.bytes) })
	return ps
}

// String lists the parts, largest first: "anchor tables 37MiB for 100000
// users, users 101MiB, ...".
func (m Memory) String() string { return m.describe(0) }

// describe lists the largest n parts (every part for n 0), and says how
// many more there are.
func (m Memory) describe(n int) string {
	ps := m.parts()
	more := 0
	if n > 0 && n < len(ps) {
		ps, more = ps[:n], len(ps)-n
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.name + " " + aboutSize(int64(p.bytes)) + p.detail)
	}
	if more > 0 {
		fmt.Fprintf(&b, ", and %d smaller parts", more)
	}
	return b.String()
}

// aboutSize writes an estimate, rounded up to a MiB (a KiB below one).
func aboutSize(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%dKiB", (n+1<<10-1)>>10)
	}
	return fmt.Sprintf("%dMiB", (n+1<<20-1)>>20)
}

// EstimateMemory returns what a daemon running c with users can use at
// most (see Memory). It walks the users once, without derivations.
func EstimateMemory(c *config.Config, users []*totpseq.Enrollment) Memory {
	tc := c.Tracker()
	lu := trackerUsers(users)
	m := Memory{Tracker: listener.EstimateMemory(tc, lu), users: len(users), interfaces: max(1, len(c.Interfaces)), capacity: tc.Capacity}

	nameLen, serviceLen := 0, 0 // the longest, for the replay file's lines
	for _, u := range users {
		m.Users += enrollmentBytes(u)
		nameLen = max(nameLen, len(u.Name))
		for _, s := range u.Services {
			serviceLen = max(serviceLen, len(s))
		}
	}
	m.Reload = m.Users + memsize.Alloc(len(lu)*int(unsafe.Sizeof(listener.User{})))

	m.Failures = memsize.Map(maxFailSources, int(unsafe.Sizeof(netip.Addr{})), int(unsafe.Sizeof(&failCount{}))) +
		maxFailSources*memsize.Alloc(int(unsafe.Sizeof(failCount{})))

	// openSampler.user: a Logger, its BurstSampler and BasicSampler, by
	// user name.
	samplers := min(len(users), maxOpenSamplers)
	m.Openings = memsize.Map(samplers, int(unsafe.Sizeof("")), int(unsafe.Sizeof(&zerolog.Logger{}))) +
		samplers*(memsize.Alloc(int(unsafe.Sizeof(zerolog.Logger{})))+
			memsize.Alloc(int(unsafe.Sizeof(zerolog.BurstSampler{})))+
			memsize.Alloc(int(unsafe.Sizeof(zerolog.BasicSampler{}))))

	if c.StateDir != "" {
		m.ReplayFile = replayFileBytes(tc, len(users), nameLen, serviceLen)
	}

	m.Rings = m.interfaces * capture.DefaultBlockSize * capture.DefaultNumBlocks
	heap := m.Tracker.Total() + m.Users + m.Reload + m.Failures + m.Openings + m.ReplayFile
	m.Overhead = heap / overheadShare
	m.Base = codeBytes + runtimeBytes
	return m
}

// uriFixed bounds the text of an enrollment URI besides its values: the
// scheme, the issuer, every parameter's name and separators, the numbers
// (period, len, range, v6prefix) and the file's newline.
const uriFixed = 200

// enrollmentBytes bounds what a parsed enrollment file holds: the
// Enrollment, its pointer in the users list, the name and secret (made
// anew by the parser), the slices, and the file's text, which the other
// strings are substrings of.
func enrollmentBytes(e *totpseq.Enrollment) int {
	text := uriFixed + escapedLen(e.Name) + (len(e.Secret)*8+4)/5 + escapedLen(e.Host) + escapedLen(e.Realm) +
		6*len(e.Exclude) + 24*len(e.Check)
	for _, s := range e.Services {
		text += escapedLen(s) + 1
	}
	for _, s := range e.STUN {
		text += escapedLen(s) + 1
	}
	str := int(unsafe.Sizeof(""))
	return int(unsafe.Sizeof(e)) + memsize.Alloc(int(unsafe.Sizeof(*e))) + memsize.Alloc(text) +
		memsize.Alloc(len(e.Name)) + memsize.Alloc(len(e.Secret)) +
		memsize.Alloc(len(e.Services)*str) + memsize.Alloc(len(e.STUN)*str) +
		memsize.Alloc(2*len(e.Exclude)) + memsize.Alloc(len(e.Check)*int(unsafe.Sizeof(totpseq.CheckPort{})))
}

// escapedLen is the length of s query-escaped: three bytes for each byte
// other than a letter, a digit, '-', '.', '_' or '~'.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			n += 2
		}
	}
	return n
}

// replayFileBytes bounds replayState's memory for a tracker configured by
// tc with n users whose longest name and service have nameLen and
// serviceLen bytes: its lines since the last rewrite (at most twice the
// live records, which are at most the tracker's replay record, or
// minCompact), each with its source address's text; the file's text, as
// the start reads it or a rewrite encodes it, and the records decoded from
// it at the start; the users' periods of a rewrite.
func replayFileBytes(tc listener.Config, n, nameLen, serviceLen int) int {
	perUser := tc.ReplayPerUser
	if perUser == 0 {
		perUser = min(listener.DefaultReplayPerUser, tc.ReplayCapacity)
	}
	records := min(tc.ReplayCapacity, max(1, n)*perUser)
	lines := max(minCompact, 2*records)
	// {"user":"","service":"","window":,"src":""} and a newline; a
	// window has up to 20 digits, an address up to 39 characters.
	const maxAddr = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	lineLen := len(`{"user":"","service":"","window":,"src":""}`+"\n") + nameLen + serviceLen + 20 + maxAddr
	return memsize.Slice(lines, int(unsafe.Sizeof(replayLine{}))) + lines*memsize.Alloc(maxAddr) +
		memsize.Alloc(lines*lineLen) + memsize.Alloc(lines*int(unsafe.Sizeof(listener.Accepted{}))) +
		memsize.Map(n, int(unsafe.Sizeof("")), int(unsafe.Sizeof(int64(0))))
}

// Limit returns the memory limit in force for c: memory_limit, or when it
// is not set the estimate plus a quarter, rounded up to a MiB.
func (m Memory) Limit(c *config.Config) int64 {
	if c.MemoryLimit != 0 {
		return c.MemoryLimit
	}
	return (m.Total()*5/4 + 1<<20 - 1) >> 20 << 20
}

// Summary says what check-config shows: the estimate, its parts and the
// limit in force for c.
func (m Memory) Summary(c *config.Config) string {
	limit := "memory_limit " + config.FormatSize(c.MemoryLimit)
	if c.MemoryLimit == 0 {
		limit = "memory_limit not set: the daemon limits itself to " + config.FormatSize(m.Limit(c)) + " (the estimate plus a quarter)"
	}
	return fmt.Sprintf("about %s at most (%s); %s", aboutSize(m.Total()), m, limit)
}

// goLimit returns the soft limit of the Go runtime for a memory limit:
// less the resident memory it does not count (code, capture rings), at
// least what the runtime itself needs.
func (m Memory) goLimit(limit int64) int64 {
	return max(limit-int64(m.Rings)-codeBytes, runtimeBytes)
}

// CheckMemory estimates the memory of a daemon running c with users, and
// returns an error naming memory_limit, the limit, the estimate and its
// largest parts when the estimate exceeds c's memory_limit.
func CheckMemory(c *config.Config, users []*totpseq.Enrollment) (Memory, error) {
	m := EstimateMemory(c, users)
	if c.MemoryLimit != 0 && m.Total() > c.MemoryLimit {
		return m, fmt.Errorf("%s: field memory_limit: %s: the configuration and its %d users need about %s (%s): "+
			"raise memory_limit, or leave it out for a limit derived from the estimate",
			c.Path, config.FormatSize(c.MemoryLimit), len(users), aboutSize(m.Total()), m.describe(4))
	}
	return m, nil
}
