package listener

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// trkStream returns n knocks from a few sources: random ports of the
// small range of trkFuzzUsers, anchors, and true sequences, with pauses
// from the fuzz target's set.
func trkStream(rng *rand.Rand, n int) []Knock {
	users := trkFuzzUsers()
	srcs := append([]netip.Addr{}, trkFuzzSrcs...)
	for i := range 40 {
		srcs = append(srcs, trkSpoofed(i))
	}
	now := trkAt(trkMid)
	var ks []Knock
	for len(ks) < n {
		src := srcs[rng.IntN(len(srcs))]
		now = now.Add(trkFuzzDeltas[rng.IntN(len(trkFuzzDeltas))] / 8)
		switch rng.IntN(3) {
		case 0:
			proto := inet.TCP
			if rng.IntN(4) == 0 {
				proto = inet.UDP
			}
			ks = append(ks, Knock{Src: src, Proto: proto, Port: 10000 + uint16(rng.IntN(70)), Time: now})
		default: // a true sequence, maybe cut short
			u := &users[rng.IntN(len(users))]
			svc := u.Params.Services[rng.IntN(len(u.Params.Services))]
			w := totpseq.Window(now, u.Params.Period)
			seq, err := totpseq.Sequence(&u.Params, svc, w, src)
			if err != nil {
				panic(err)
			}
			for _, p := range seq[:1+rng.IntN(len(seq))] {
				now = now.Add(time.Duration(rng.IntN(int(50 * time.Millisecond))))
				ks = append(ks, Knock{Src: src, Proto: u.Params.Proto, Port: p, Time: now})
			}
		}
	}
	return ks
}

// TestTrackerBatches: knocks given in batches (as Run does) report the
// same events and counters as one by one, with a tiny state (many knocks
// of a batch in one bucket) and a large one.
func TestTrackerBatches(t *testing.T) {
	for _, capacity := range []int{3, 40, 1000} {
		for seed := range uint64(20) {
			rng := rand.New(rand.NewPCG(seed, uint64(capacity)))
			ks := trkStream(rng, 3000)
			cfg := trkFuzzConfig()
			cfg.Capacity = capacity
			one, rec1 := trkNew(t, cfg, trkFuzzUsers()...)
			many, rec2 := trkNew(t, cfg, trkFuzzUsers()...)
			one.hash, many.hash = trkHasher, trkHasher
			for _, k := range ks {
				one.Knock(k)
			}
			for rest := ks; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(2*maxBatch))
				many.knockBatch(rest[:n])
				rest = rest[n:]
			}
			if diff := cmp.Diff(trkEvents(rec1.events), trkEvents(rec2.events), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("capacity %d, seed %d: events (-one by one +batches):\n%s", capacity, seed, diff)
			}
			s1, s2 := one.Stats(), many.Stats()
			s1.TableBuild, s2.TableBuild = 0, 0
			if s1 != s2 {
				t.Fatalf("capacity %d, seed %d: stats one by one %+v, in batches %+v", capacity, seed, s1, s2)
			}
			if seed == 0 {
				t.Logf("capacity %d: %d events, stats %+v", capacity, len(rec1.events), s1)
			}
		}
	}
}
