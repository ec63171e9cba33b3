package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/testkit"
)

// TestClockSkew knocks as a client whose clock is off by whole windows:
// `tknock print --at` computes the sequence for the client's wrong "now",
// and the knocks go out from the client's address. One window off (either
// way) still opens, with skew 1; three windows off opens nothing and the
// daemon logs a probable clock skew with the offset.
func TestClockSkew(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const period = 30
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Period: period})
		d := e.startDaemon(e.writeConfig(config{Skew: 1, DropKnocks: ptr(true)}))

		for _, tc := range []struct {
			windows int // how far the client's clock is off, in windows
			opens   bool
		}{
			{+1, true},
			{-1, true},
			{+3, false},
			{-3, false},
		} {
			t.Run(fmt.Sprintf("%+d", tc.windows), func(t *testing.T) {
				e := e.in(t)
				// Far enough from a boundary that the offset the daemon
				// sees is the one the test means.
				now := testkit.AwayFromBoundary(period, 3*time.Second, 500*time.Millisecond)
				clock := now.Add(time.Duration(tc.windows*period) * time.Second)
				seq := e.sequence(alice, "ssh", e.clientAddr.String(), clock)
				m := d.mark()
				e.sendRaw(e.client, e.clientAddr, inet.TCP, seq)
				want := fmt.Sprint(tc.windows)
				if tc.opens {
					l, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh"))
					if err != nil {
						t.Fatal(err)
					}
					if got := l.str("offset"); got != want {
						t.Errorf("opening at window offset %s, want %s", got, want)
					}
					e.mustConnect(e.client, sshPort)
					return
				}
				l, err := d.waitFrom(m, 5*time.Second, "a clock-skew line", isReject("clock_skew"))
				if err != nil {
					t.Fatal(err)
				}
				if got := l.str("offset"); got != want {
					t.Errorf("clock skew logged with offset %s, want %s", got, want)
				}
				if got := l.str("src"); got != e.clientAddr.String() {
					t.Errorf("clock skew logged for src %q, want %v", got, e.clientAddr)
				}
				if got := d.since(m, isEvent("open")); len(got) != 0 {
					t.Errorf("a sequence %d windows off opened: %s", tc.windows, got[0].raw)
				}
			})
		}
	})
}
