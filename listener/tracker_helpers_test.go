package listener

import (
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// Helpers of the tracker tests. Names start with trk so that they never
// collide with the helpers of the decoder and capture tests in this
// package.

// trkT0 is a window boundary for every period that divides 1 740 000 000
// seconds (5, 10, 15, 20, 30, 60, ...): window 58 000 000 of period 30.
var trkT0 = time.Unix(1_740_000_000, 0)

// trkW0 is the window of trkT0 for period 30.
const trkW0 = 58_000_000

// trkUser returns an enrolled user with default parameters, a secret
// derived from its name, and mod applied.
func trkUser(name string, mod func(*totpseq.Params)) User {
	p := totpseq.Defaults()
	sum := sha256.Sum256([]byte("tknock test secret " + name))
	p.Secret = sum[:]
	p.Realm = "knock.example"
	if mod != nil {
		mod(&p)
	}
	return User{Name: name, Params: p}
}

// trkRec records events.
type trkRec struct{ events []Event }

func (r *trkRec) emit(e Event) { r.events = append(r.events, e) }

// trkNew returns a tracker at trkT0.
func trkNew(t testing.TB, cfg Config, users ...User) (*Tracker, *trkRec) {
	t.Helper()
	rec := &trkRec{}
	tr, err := NewTracker(cfg, users, trkT0, rec.emit)
	if err != nil {
		t.Fatalf("NewTracker: %v", err)
	}
	return tr, rec
}

// trkSeq returns the true sequence of u's service in window for src.
func trkSeq(t testing.TB, u User, service string, window uint64, src netip.Addr) []uint16 {
	t.Helper()
	s, err := totpseq.Sequence(&u.Params, service, window, src)
	if err != nil {
		t.Fatalf("Sequence(%s, %s, %d, %v): %v", u.Name, service, window, src, err)
	}
	return s
}

// trkKnocks returns knocks of proto from src to ports, the first at start,
// then one every gap.
func trkKnocks(src netip.Addr, proto inet.Proto, ports []uint16, start time.Time, gap time.Duration) []Knock {
	ks := make([]Knock, len(ports))
	for i, p := range ports {
		ks[i] = Knock{Src: src, Proto: proto, Port: p, Time: start.Add(time.Duration(i) * gap)}
	}
	return ks
}

// trkAt returns trkT0 plus d.
func trkAt(d time.Duration) time.Time { return trkT0.Add(d) }

// trkAddr parses an address.
func trkAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// trkWindow returns the window of tm for period seconds.
func trkWindow(tm time.Time, period int) uint64 { return totpseq.Window(tm, period) }

// trkEv is the part of an Event the tests compare.
type trkEv struct {
	Kind    EventKind
	User    string
	Service string
	Src     netip.Addr
	Window  uint64
	Offset  int
}

func trkEvents(es []Event) []trkEv {
	out := make([]trkEv, 0, len(es))
	for _, e := range es {
		out = append(out, trkEv{e.Kind, e.User, e.Service, e.Src, e.Window, e.Offset})
	}
	return out
}
