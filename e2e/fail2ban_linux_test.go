package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/internal/testkit"
)

// filterPath is the fail2ban filter that deploy/ ships.
const filterPath = "../deploy/fail2ban/filter.d/tknockd.conf"

// TestFail2banFilter runs an attack on the real daemon (prefilter as
// deployed): a stranger who saw the anchor guesses again and again, and the
// client's sequence is replayed; a user with a clock three windows ahead
// knocks, and the client opens. fail2ban-regex, with the shipped filter,
// over the daemon's own log finds the stranger and the replaying address,
// never the clock-skewed user's rejects nor an opening.
func TestFail2banFilter(t *testing.T) {
	nstest.RequireTool(t, "fail2ban-regex")
	forFamilies(t, func(t *testing.T, e *env) {
		const period = 30
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Period: period})
		d := e.startDaemon(e.writeConfig(config{Skew: 1, DropKnocks: ptr(true)}))
		s := e.sniff(e.server, e.srvToClient)

		at := testkit.AwayFromBoundary(period, 15*time.Second, 200*time.Millisecond)
		m := d.mark()
		e.knock(alice, "ssh")
		if _, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		openedAt := time.Now()
		captured := knocksFrom(s.packets(), e.clientAddr, inet.TCP)
		seq := e.sequence(alice, "ssh", e.clientAddr.String(), at)
		if len(captured) == 0 || captured[0] != seq[0] {
			t.Fatalf("knocks captured %v, want the sequence %v", captured, seq)
		}

		// The stranger knows the anchor (it is the same for every source)
		// and guesses the next port, twelve times.
		wrong := uint16(knockLo)
		for slices.Contains(seq, wrong) {
			wrong++
		}
		m = d.mark()
		var guesses []uint16
		for range 12 {
			guesses = append(guesses, seq[0], wrong)
		}
		e.sendRaw(e.stranger, e.strangerAddr, inet.TCP, guesses)
		l, err := d.waitFrom(m, 5*time.Second, "a knock_failed line for the stranger", isEvent("knock_failed"))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.str("src"); got != e.strangerAddr.String() {
			t.Errorf("knock_failed for src %q, want the stranger %v", got, e.strangerAddr)
		}
		for _, p := range append(seq, wrong) {
			if strings.Contains(l.raw, fmt.Sprint(p)) {
				t.Errorf("knock_failed line shows port %d: %s", p, l.raw)
			}
		}

		// A clock three windows ahead: a clock_skew reject.
		skewed := e.sequence(alice, "ssh", e.clientAddr.String(), at.Add(3*period*time.Second))
		m = d.mark()
		e.sendRaw(e.client, e.clientAddr, inet.TCP, skewed)
		if _, err := d.waitFrom(m, 5*time.Second, "a clock_skew reject", isReject("clock_skew")); err != nil {
			t.Fatal(err)
		}

		// The captured sequence replayed once gap_max has passed.
		sleepUntil(openedAt.Add(3*time.Second + 500*time.Millisecond))
		m = d.mark()
		e.sendRaw(e.client, e.clientAddr, inet.TCP, captured)
		if _, err := d.waitFrom(m, 5*time.Second, "a replay reject", isReject("replay")); err != nil {
			t.Fatal(err)
		}

		log := filepath.Join(e.dir, "tknockd.log")
		var b strings.Builder
		d.mu.Lock()
		for _, l := range d.lines {
			b.WriteString(l.raw + "\n")
		}
		d.mu.Unlock()
		if err := os.WriteFile(log, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("fail2ban-regex", "-o", "ip", log, mustAbs(t, filterPath)).CombinedOutput()
		if err != nil {
			t.Fatalf("fail2ban-regex: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		want := []string{e.strangerAddr.String(), e.clientAddr.String()} // knock_failed, then the replay
		if !slices.Equal(got, want) {
			t.Errorf("fail2ban-regex found %q, want %q (the stranger's failures, the replay; not the clock_skew reject nor the opening)\nlog:\n%s", got, want, b.String())
		}
	})
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
