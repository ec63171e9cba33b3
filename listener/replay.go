package listener

import "time"

// MaxSkew is the largest Config.Skew.
const MaxSkew = 5

// DefaultReplayCapacity is the default bound of the replay record.
const DefaultReplayCapacity = 1 << 16

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
	capacity  int
	lastPurge int64 // Unix nanoseconds of the last purge
}

// replayResult is what adding a record found.
type replayResult uint8

const (
	replayNew  replayResult = iota // recorded: open
	replaySeen                     // accepted before: a replay
	replayFull                     // full of live records: refuse
)

// replayHint is the room the record's map starts with: a map's memory is
// written when it is made, and an idle daemon should not pay for
// thousands of records it has not seen. It grows to capacity as needed.
const replayHint = 64

func newReplayRecord(capacity int) replayRecord {
	return replayRecord{m: make(map[replayKey]int64, min(capacity, replayHint)), capacity: capacity}
}

// add records k at Unix nanoseconds now unless it is there already or the
// record is full.
func (r *replayRecord) add(k replayKey, period, now int64) replayResult {
	if _, ok := r.m[k]; ok {
		return replaySeen
	}
	if len(r.m) >= r.capacity {
		// A full scan; at most once a second so that completions while the
		// record is full of live entries stay cheap.
		if now-r.lastPurge >= int64(time.Second) || now < r.lastPurge {
			r.purge(now)
			r.lastPurge = now
		}
		if len(r.m) >= r.capacity {
			return replayFull
		}
	}
	r.m[k] = period
	return replayNew
}

// purge removes the records whose window has left
// now-MaxSkew..now+MaxSkew on the old side.
func (r *replayRecord) purge(now int64) {
	for k, period := range r.m {
		if k.window+MaxSkew < windowAt(now, period) {
			delete(r.m, k)
		}
	}
}
