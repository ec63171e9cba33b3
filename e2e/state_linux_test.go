package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/testkit"
)

// TestReplayAfterKill9: the real daemon opens for a sequence, is killed
// with SIGKILL and started again on the same state directory; the
// sequence captured on the wire, replayed from the same source while its
// window is still accepted, is refused as a replay by the new daemon.
func TestReplayAfterKill9(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const period = 10 // seconds: window w is accepted until w+2 starts, 20 s after w
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Period: period})
		state := filepath.Join(e.dir, "state")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := e.writeConfig(config{Skew: 1, DropKnocks: ptr(true), StateDir: state})
		d1 := e.startDaemon(cfg)
		s := e.sniff(e.server, e.srvToClient)

		testkit.AwayFromBoundary(period, 8*time.Second, 200*time.Millisecond) // the replay falls in window w or w+1
		m := d1.mark()
		e.knock(alice, "ssh")
		if _, err := d1.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		openedAt := time.Now()
		captured := knocksFrom(s.packets(), e.clientAddr, inet.TCP)
		if len(captured) == 0 {
			t.Fatal("no knock captured on the wire")
		}
		d1.kill9()

		d2 := e.startDaemon(cfg)
		if l, err := d2.waitFrom(0, 5*time.Second, "the restore line", isEvent("state")); err != nil {
			t.Error(err)
		} else if l.str("restored") != "1" {
			t.Errorf("restore line %s, want 1 record restored", l.raw)
		}
		sleepUntil(openedAt.Add(3*time.Second + 500*time.Millisecond)) // past gap_max: not copies
		m = d2.mark()
		e.sendRaw(e.client, e.clientAddr, inet.TCP, captured)
		l, err := d2.waitFrom(m, 5*time.Second, "a replay rejection by the restarted daemon", isReject("replay"))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.str("src"); got != e.clientAddr.String() {
			t.Errorf("replay rejected for src %q, want %v", got, e.clientAddr)
		}
		if got := d2.since(m, isEvent("open")); len(got) != 0 {
			t.Errorf("the sequence accepted before the SIGKILL opened again: %s", got[0].raw)
		}
	})
}
