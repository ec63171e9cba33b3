package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/totpseq"
)

// TestReplay captures the client's knocks on the wire and replays them the
// ways an eavesdropper would: from the same source after they were used,
// from other source addresses, and after their window has left the skew
// range. None of it opens anything. The client itself, knocking again in
// the same window, gets in (it moves to the next window).
func TestReplay(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const period = 5 // seconds: the shortest window, so the last step waits ~10 s, not a minute
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Period: period})
		d := e.startDaemon(e.writeConfig(config{Skew: 1, DropKnocks: ptr(true)}))
		s := e.sniff(e.server, e.srvToClient)

		knockedAt := testkit.AwayFromBoundary(period, 2*time.Second, 200*time.Millisecond)
		w := totpseq.Window(knockedAt, period)
		m := d.mark()
		e.knock(alice, "ssh")
		if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		openedAt := time.Now()
		captured := knocksFrom(s.packets(), e.clientAddr, inet.TCP)
		want := e.sequence(alice, "ssh", e.clientAddr.String(), knockedAt)
		if !slices.Equal(captured, slices.Repeat(want, client.DefaultRounds)) {
			t.Fatalf("knocks captured on the wire: %v; want the sequence of the current window, %v, %d times (the client's rounds)", captured, want, client.DefaultRounds)
		}

		t.Run("same source", func(t *testing.T) {
			e := e.in(t)
			// Until gap_max after its completion the daemon takes the
			// sequence again from the same source as copies (the
			// client's rounds), silently; after that, as a replay.
			sleepUntil(openedAt.Add(3*time.Second + 500*time.Millisecond))
			m := d.mark()
			e.sendRaw(e.client, e.clientAddr, inet.TCP, captured)
			l, err := d.waitFrom(m, 5*time.Second, "a replay rejection", isReject("replay"))
			if err != nil {
				t.Fatal(err)
			}
			if got := l.str("src"); got != e.clientAddr.String() {
				t.Errorf("replay rejected for src %q, want %v", got, e.clientAddr)
			}
			if got := d.since(m, isEvent("open")); len(got) != 0 {
				t.Errorf("the replayed sequence opened: %s", got[0].raw)
			}
		})

		t.Run("other sources", func(t *testing.T) {
			e := e.in(t)
			m := d.mark()
			e.sendRaw(e.stranger, e.strangerAddr, inet.TCP, captured)
			e.sendRaw(e.stranger, e.spoofedAddr, inet.TCP, captured)
			e.marker(d, e.stranger, e.strangerAddr, alice)
			if got := d.since(m, isEvent("open")); len(got) != 0 {
				t.Errorf("the client's sequence sent from another address opened: %s", got[0].raw)
			}
			e.mustRefuse(e.stranger, sshPort)
		})

		t.Run("second knock in the window", func(t *testing.T) {
			e := e.in(t)
			m := d.mark()
			e.knock(alice, "ssh")
			l, err := d.waitFrom(m, 5*time.Second, "a second opening for alice", isOpen("alice", "ssh"))
			if err != nil {
				t.Fatal(err)
			}
			if now := totpseq.Window(time.Now(), period); now == w && l.str("offset") != "1" {
				t.Errorf("second knock in window %d opened at offset %s, want 1 (the next window)", w, l.str("offset"))
			}
		})

		t.Run("after the window", func(t *testing.T) {
			e := e.in(t)
			// Window w is accepted until w+skew is the current window.
			sleepUntil(totpseq.WindowStart(w+2, period).Add(200 * time.Millisecond))
			m := d.mark()
			e.sendRaw(e.client, e.clientAddr, inet.TCP, captured)
			l, err := d.waitFrom(m, 5*time.Second, "a rejection of the old sequence", isEvent("reject"))
			if err != nil {
				t.Fatal(err)
			}
			if got := l.str("src"); got != e.clientAddr.String() {
				t.Errorf("old sequence rejected for src %q, want %v", got, e.clientAddr)
			}
			// Its window is now two behind: outside the skew, a probable
			// clock skew for the daemon (or expired, were it slow).
			if reason, off := l.str("reason"), l.str("offset"); !(reason == "clock_skew" && off == "-2") && reason != "expired" {
				t.Errorf("old sequence rejected with reason %q offset %s, want clock_skew at -2 (or expired)", reason, off)
			}
			if got := d.since(m, isEvent("open")); len(got) != 0 {
				t.Errorf("the sequence of a window beyond the skew opened: %s", got[0].raw)
			}
		})
	})
}
