package listener

import (
	"sync"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// trkPublished records what a tracker publishes through Config.Anchors.
type trkPublished struct {
	mu   sync.Mutex
	sets []AnchorPorts
}

func (r *trkPublished) publish(a AnchorPorts) {
	r.mu.Lock()
	r.sets = append(r.sets, a)
	r.mu.Unlock()
}

// latest returns how many sets were published and the latest.
func (r *trkPublished) latest() (int, AnchorPorts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return 0, AnchorPorts{}
	}
	return len(r.sets), r.sets[len(r.sets)-1]
}

// trkBit reports whether port of proto is set in a.
func trkBit(a AnchorPorts, proto inet.Proto, port uint16) bool {
	return a.Ports[protoIndex(proto)][port>>6]&(1<<(port&63)) != 0
}

// trkCheckAnchors checks that a, published for a table at trkT0 with
// depth d, has the anchor of every service of users for every window
// within d of trkT0's, and no port of a user's range that is no user's
// anchor in any window near it.
func trkCheckAnchors(t *testing.T, a AnchorPorts, d int, users ...User) {
	t.Helper()
	ns := trkT0.UnixNano()
	if a.From > ns || a.Until <= ns {
		t.Errorf("published interval [%d, %d) does not contain the table's time %d", a.From, a.Until, ns)
	}
	// near: every anchor in windows well beyond the table's (its back
	// windows included), per protocol.
	near := map[inet.Proto]map[uint16]bool{inet.TCP: {}, inet.UDP: {}}
	for _, u := range users {
		w0 := int64(trkWindow(trkT0, u.Params.Period))
		for _, svc := range u.Params.Services {
			for w := w0 - int64(d) - 20; w <= w0+int64(d)+20; w++ {
				port, err := totpseq.Anchor(&u.Params, svc, uint64(w))
				if err != nil {
					t.Fatalf("Anchor(%s, %s, %d): %v", u.Name, svc, w, err)
				}
				near[u.Params.Proto][port] = true
				if w >= w0-int64(d) && w <= w0+int64(d) && !trkBit(a, u.Params.Proto, port) {
					t.Errorf("%s/%s window %+d: anchor %v %d not published", u.Name, svc, w-w0, u.Params.Proto, port)
				}
			}
		}
	}
	for _, u := range users {
		r := u.Params.Range
		port := r.Lo
		for near[u.Params.Proto][port] && port < r.Hi {
			port++
		}
		if near[u.Params.Proto][port] {
			t.Fatalf("%s: every port of %d-%d is an anchor", u.Name, r.Lo, r.Hi)
		}
		if trkBit(a, u.Params.Proto, port) {
			t.Errorf("%s: %v %d, no user's anchor near the table's windows, is published", u.Name, u.Params.Proto, port)
		}
	}
	if trkBit(a, inet.TCP, 80) || trkBit(a, inet.UDP, 53) {
		t.Error("a port outside every user's range is published")
	}
}

// TestTrackerAnchorsHook: NewTracker publishes the anchors of its first
// table before it returns, SetUsers those of the new users' table.
func TestTrackerAnchorsHook(t *testing.T) {
	var rec trkPublished
	cfg := DefaultConfig()
	cfg.Anchors = rec.publish
	d := cfg.depth()
	alice := trkUser("alice", nil)
	bob := trkUser("bob", func(p *totpseq.Params) {
		p.Proto = inet.UDP
		p.Range = totpseq.Range{Lo: 20000, Hi: 20999}
		p.Period = 60
	})
	tr, _ := trkNew(t, cfg, alice, bob)
	n, a := rec.latest()
	if n == 0 {
		t.Fatal("NewTracker returned without publishing anchors")
	}
	trkCheckAnchors(t, a, d, alice, bob)

	carol := trkUser("carol", func(p *totpseq.Params) {
		p.Range = totpseq.Range{Lo: 40000, Hi: 40999}
	})
	if err := tr.SetUsers([]User{carol}, trkT0); err != nil {
		t.Fatalf("SetUsers: %v", err)
	}
	m, a := rec.latest()
	if m <= n {
		t.Fatal("SetUsers returned without publishing anchors")
	}
	trkCheckAnchors(t, a, d, carol)
	for _, u := range []User{alice, bob} {
		r := u.Params.Range
		for port := int(r.Lo); port <= int(r.Hi); port++ {
			if trkBit(a, u.Params.Proto, uint16(port)) {
				t.Errorf("after SetUsers, %v %d of the removed user %s's range is published", u.Params.Proto, port, u.Name)
				break
			}
		}
	}

	// A knock two windows later: the tracker builds the table of its time
	// before it uses it, and publishes it first.
	at := trkAt(2*time.Duration(carol.Params.Period)*time.Second + time.Second)
	tr.Knock(Knock{Src: trkAddr("198.51.100.7"), Proto: inet.TCP, Port: 40000, Time: at})
	k, a := rec.latest()
	if k <= m {
		t.Fatal("a knock past the table's interval: no table published")
	}
	if ns := at.UnixNano(); a.From > ns || a.Until <= ns {
		t.Errorf("the table built for a knock at %d was published for [%d, %d)", ns, a.From, a.Until)
	}
}
