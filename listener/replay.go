package listener

import (
	"net/netip"
	"time"

	"github.com/tknock/tknock/totpseq"
)

// MaxSkew is the largest Config.Skew.
const MaxSkew = 5

// DefaultReplayCapacity is the default bound of the replay record.
const DefaultReplayCapacity = 1 << 16

// DefaultReplayPerUser is the default bound of the records of one user:
// the sequences one user may have accepted within the replay horizon (up
// to 2*MaxSkew+1 windows), so that one enrolled user, from many addresses
// (a /64, spoofed sources), cannot fill the record and lock the others out
// with ReplayFull.
const DefaultReplayPerUser = 1024

// replayKey is one accepted sequence: PROTOCOL.md section 3 rule 6 keys it
// by (user, service, window, ip16). The strings are the user's own, so a
// key allocates nothing new.
type replayKey struct {
	user, service string
	window        int64
	ip            [16]byte // ip16 of the source under the user's v6prefix
}

// replayRecord is the bounded record of accepted sequences. A record is
// kept at least until its window has left now-MaxSkew..now+MaxSkew, the
// widest range any configuration accepts, so lowering and then raising the
// skew cannot make a replay acceptable. Expired records are removed only
// when the record is full (lazily), which keeps them longer than needed and
// makes the record robust to a clock stepped backwards. When it is full of
// records that may still matter, a completion is refused rather than a
// record forgotten.
//
// Owned by the goroutine that calls Tracker.Knock.
type replayRecord struct {
	m         map[replayKey]int64 // value: the user's period in seconds
	perUser   map[string]int      // records by user
	capacity  int
	userCap   int   // records of one user at most
	lastPurge int64 // Unix nanoseconds of the last purge
}

// replayResult is what adding a record found.
type replayResult uint8

const (
	replayNew   replayResult = iota // recorded: open
	replaySeen                      // accepted before: a replay
	replayFull                      // full of live records: refuse
	replayQuota                     // the user's quota is full of live records: refuse
)

// replayHint is the room the record's map starts with: a map's memory is
// written when it is made, and an idle daemon should not pay for
// thousands of records it has not seen. It grows to capacity as needed.
const replayHint = 64

func newReplayRecord(capacity, perUser int) replayRecord {
	return replayRecord{
		m:        make(map[replayKey]int64, min(capacity, replayHint)),
		perUser:  make(map[string]int),
		capacity: capacity,
		userCap:  perUser,
	}
}

// add records k at Unix nanoseconds now unless it is there already or the
// record is full.
func (r *replayRecord) add(k replayKey, period, now int64) replayResult {
	if _, ok := r.m[k]; ok {
		return replaySeen
	}
	if len(r.m) >= r.capacity || r.perUser[k.user] >= r.userCap {
		// A full scan; at most once a second so that completions while the
		// record (or a user's quota) is full of live entries stay cheap.
		if now-r.lastPurge >= int64(time.Second) || now < r.lastPurge {
			r.purge(now)
			r.lastPurge = now
		}
		if len(r.m) >= r.capacity {
			return replayFull
		}
		if r.perUser[k.user] >= r.userCap {
			return replayQuota
		}
	}
	r.m[k] = period
	r.perUser[k.user]++
	return replayNew
}

// purge removes the records whose window has left
// now-MaxSkew..now+MaxSkew on the old side.
func (r *replayRecord) purge(now int64) {
	for k, period := range r.m {
		if k.window+MaxSkew < windowAt(now, period) {
			delete(r.m, k)
			if r.perUser[k.user]--; r.perUser[k.user] <= 0 {
				delete(r.perUser, k.user)
			}
		}
	}
}

// Accepted is a sequence accepted before, as a caller persists it to
// survive a restart: the fields of its Opened event.
type Accepted struct {
	User, Service string
	Window        uint64
	Src           netip.Addr
}

// Restore adds sequences accepted by an earlier run (a persisted replay
// record) to the replay record, so that they are replays now: a restart
// must not open again what was opened before it. Records of users or
// services no longer enrolled, and those whose window has left
// now-MaxSkew..now+MaxSkew, are skipped, and so are those beyond the
// record's capacity or their user's quota. It returns the number restored.
// It must be called by the goroutine that calls Knock, or before the first
// Knock.
func (t *Tracker) Restore(recs []Accepted, now time.Time) int {
	ns, ok := unixNano(now)
	if !ok {
		return 0
	}
	st := t.st
	byName := make(map[string]int, len(st.users))
	for i := range st.users {
		byName[st.users[i].name] = i
	}
	n := 0
	for _, a := range recs {
		i, ok := byName[a.User]
		if !ok || !a.Src.IsValid() || a.Window > 1<<40 {
			continue
		}
		u := &st.users[i]
		svc := -1
		for j, s := range u.params.Services {
			if s == a.Service {
				svc = j
			}
		}
		w := int64(a.Window)
		if svc < 0 || w+MaxSkew < windowAt(ns, u.period) {
			continue
		}
		ip, err := totpseq.IP16(a.Src.Unmap(), u.params.V6Prefix)
		if err != nil {
			continue
		}
		k := replayKey{user: u.name, service: st.slots[u.first+svc].service, window: w, ip: ip}
		if t.replay.add(k, u.period, ns) == replayNew {
			n++
		}
	}
	return n
}
