package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestFailWatch: a source is reported once it has failed failThreshold
// attempts within failWindow, then once per window while it goes on; a
// source with fewer failures (a client that lost a knock, twice) never is.
func TestFailWatch(t *testing.T) {
	var buf syncBuffer
	w := newFailWatch(zerolog.New(&buf))
	attacker := netip.MustParseAddr("203.0.113.66")
	user := netip.MustParseAddr("198.51.100.9")
	t0 := time.Unix(1_740_000_000, 0)
	for i := range 5000 { // 50 s at 100 attempts a second
		w.failed(attacker, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	w.failed(user, t0)
	w.failed(user, t0.Add(30*time.Second))
	for i := range failThreshold { // a second minute
		w.failed(attacker, t0.Add(time.Minute+time.Duration(i)*time.Second))
	}
	text := buf.String()
	if n := strings.Count(text, `"event":"knock_failed"`); n != 2 {
		t.Errorf("%d knock_failed lines, want 2 (one a minute):\n%s", n, text)
	}
	if n := strings.Count(text, `"src":"203.0.113.66"`); n != 2 {
		t.Errorf("%d lines name the attacker, want 2", n)
	}
	if strings.Contains(text, user.String()) {
		t.Errorf("a source with 2 failures in a minute was reported:\n%s", text)
	}
	if !strings.Contains(text, `"reason":"wrong_knock"`) || !strings.Contains(text, `"attempts":10`) {
		t.Errorf("report without its reason or count:\n%s", text)
	}
}

// TestFailWatchBounded: a flood of failures from ever new (spoofed)
// sources keeps the table within maxFailSources.
func TestFailWatchBounded(t *testing.T) {
	w := newFailWatch(zerolog.Nop())
	t0 := time.Unix(1_740_000_000, 0)
	for i := range maxFailSources + 1000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		w.failed(a, t0)
	}
	if len(w.by) > maxFailSources {
		t.Errorf("%d sources tracked, want at most %d", len(w.by), maxFailSources)
	}
}
