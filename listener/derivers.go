package listener

import "github.com/tknock/tknock/totpseq"

// maxDerivers bounds the deriver cache: a Deriver holds its user's HMAC
// state, about 1.3 KiB, so that derivers made on demand for every user at
// every anchor a flood touches (with 100 000 users, nearly every port is
// one) took 128 MiB of heap. DeriverCacheBytes is what the cache holds at
// most.
const maxDerivers = 4096

// DeriverCacheBytes bounds the memory of the deriver cache, part of the
// tracker's memory beside MaxTableBytes.
const DeriverCacheBytes = maxDerivers * 1400

// deriverCache holds the Derivers of recently used users, direct-mapped by
// user index: a miss rekeys the slot's Deriver to the user (one HMAC key
// set-up, about as much as one derivation), in place: a spray that misses
// at every anchor leaves no garbage, so the heap does not grow towards
// the garbage collector's next goal (with 100 000 users, twice a live heap
// of over 100 MiB) between collections. Owned by the goroutine that calls
// Knock.
type deriverCache struct {
	slots  []deriverSlot
	misses uint64 // Derivers rekeyed or made
}

type deriverSlot struct {
	user int32 // -1: empty
	d    *totpseq.Deriver
}

func newDeriverCache(users int) deriverCache {
	c := deriverCache{slots: make([]deriverSlot, max(1, min(users, maxDerivers)))}
	for i := range c.slots {
		c.slots[i].user = -1
	}
	return c
}

// get returns user i's Deriver for p, made if it is not cached; nil if p
// is rejected.
func (c *deriverCache) get(i int32, p *totpseq.Params) *totpseq.Deriver {
	s := &c.slots[int(i)%len(c.slots)]
	if s.user == i && s.d != nil {
		return s.d
	}
	c.misses++
	if s.d != nil {
		if s.d.Rekey(p) != nil {
			return nil
		}
		s.user = i
		return s.d
	}
	d, err := totpseq.NewDeriver(p)
	if err != nil {
		return nil
	}
	s.user, s.d = i, d
	return d
}
