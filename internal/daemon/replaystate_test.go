package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/listener"
)

// stopHarness ends h's daemon as a restart would, leaving its result for
// the harness's cleanup.
func stopHarness(t *testing.T, h *harness) {
	t.Helper()
	h.stop()
	err := <-h.done
	h.done <- err
	if err != nil {
		t.Fatalf("runDaemon: %v", err)
	}
}

// TestDaemonReplayStateRestart: a sequence accepted before a restart is a
// replay after it, with the state directory; without one it would open
// again (the record was in memory only).
func TestDaemonReplayStateRestart(t *testing.T) { synctest.Test(t, testDaemonReplayStateRestart) }

func testDaemonReplayStateRestart(t *testing.T) {
	dir := t.TempDir()
	extra := fmt.Sprintf("state_dir = %q", dir)
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	awayFromBoundary(alice.Period, 20*time.Second)

	h1 := startHarness(t, extra, alice)
	h1.knock(alice, "ssh", 0, client)
	h1.waitAllow(1)
	stopHarness(t, h1)
	if b, err := os.ReadFile(filepath.Join(dir, replayFileName)); err != nil || !strings.Contains(string(b), `"user":"alice"`) {
		t.Fatalf("replay file after an opening: %q, %v; want alice's record", b, err)
	}

	time.Sleep(4 * time.Second) // past gap_max: a new attempt, not a copy
	h2 := startHarness(t, extra, alice)
	restored := h2.waitLog("the restore line", event("state"))
	if restored["restored"] != 1.0 {
		t.Errorf("restore line: %v, want 1 restored", restored)
	}
	m := h2.mark()
	h2.knock(alice, "ssh", 0, client)
	rej := h2.waitLogFrom(m, "a replay line after the restart", event("reject"))
	if rej["reason"] != "replay" || rej["src"] != client.String() {
		t.Errorf("after the restart: %v, want a replay reject for %v", rej, client)
	}
	// Another window still opens: the record refuses only what it holds.
	m = h2.mark()
	h2.knock(alice, "ssh", 1, client)
	h2.waitLogFrom(m, "an opening in the next window", event("open"))
}

// TestDaemonReplayStateDamaged: a damaged or unreadable state file does
// not stop the daemon; what can be read is restored, the problem logged.
func TestDaemonReplayStateDamaged(t *testing.T) {
	t.Run("torn lines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			dir := t.TempDir()
			c0 := configtest.New(t, "")
			alice := configtest.Enrollment(t, c0, "alice", "ssh")
			awayFromBoundary(alice.Period, 20*time.Second)
			now := time.Now()
			good := fmt.Sprintf(`{"user":"alice","service":"ssh","window":%d,"src":%q}`, now.Unix()/int64(alice.Period), client)
			data := "garbage\n" + good + "\n{\"user\":\"alice\",\"serv"
			if err := os.WriteFile(filepath.Join(dir, replayFileName), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			h := startHarness(t, fmt.Sprintf("state_dir = %q", dir), alice)
			l := h.waitLog("the restore line", event("state"))
			if l["level"] != "warn" || l["restored"] != 1.0 || l["unreadable_lines"] != 2.0 {
				t.Errorf("restore line: %v, want a warning, 1 restored, 2 unreadable lines", l)
			}
			m := h.mark()
			h.knock(alice, "ssh", 0, client)
			if rej := h.waitLogFrom(m, "a replay line", event("reject")); rej["reason"] != "replay" {
				t.Errorf("the restored record's sequence: %v, want a replay", rej)
			}
		})
	})
	t.Run("unreadable", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			dir := t.TempDir()
			// A directory where the file should be: not readable as one.
			if err := os.Mkdir(filepath.Join(dir, replayFileName), 0o700); err != nil {
				t.Fatal(err)
			}
			c0 := configtest.New(t, "")
			alice := configtest.Enrollment(t, c0, "alice", "ssh")
			awayFromBoundary(alice.Period, 20*time.Second)
			h := startHarness(t, fmt.Sprintf("state_dir = %q", dir), alice)
			h.waitLog("the unreadable state line", event("state_unreadable"))
			h.knock(alice, "ssh", 0, client)
			h.waitAllow(1) // fails open, see deploy/README.md
		})
	})
}

// BenchmarkReplayStateAdd is what persisting the replay record adds to an
// opening: one JSON line appended with write(2), before the firewall is
// told (rewrites included, amortised). Run with -benchtime and compare to
// the opening's delay_ms.
func BenchmarkReplayStateAdd(b *testing.B) {
	dir := b.TempDir()
	now := time.Unix(1_740_000_000, 0)
	periods := func() map[string]int64 { return map[string]int64{"alice": 30} }
	s := openReplayState(dir, nil, periods, now, zerolog.Nop())
	defer s.close()
	ev := listener.Event{Kind: listener.Opened, User: "alice", Service: "ssh", Src: client, Time: now}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Window = uint64(now.Unix()/30) + uint64(i%4)
		if err := s.add(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenLinesSampledPerUser: one user opening again and again (from its
// own /64, say) writes a bounded number of "access opened" lines; another
// user's opening is still logged.
func TestOpenLinesSampledPerUser(t *testing.T) {
	var buf syncBuffer
	log := zerolog.New(&buf)
	const n = 2000
	d := &daemon{log: log, rejects: log.Sample(newSampler()), fw: newFakeFirewall(), openings: map[string]uint64{}, deps: deps{now: time.Now},
		grants: make(chan grant, n+1)}
	c := configtest.New(t, "")
	d.cfg.Store(c)
	d.prev.Store(c)
	// emit queues each opening; the firewall goroutine's allow logs it.
	emit := func(ev listener.Event) {
		d.emit(ev)
		for len(d.grants) > 0 {
			if err := d.allow(<-d.grants); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range n {
		emit(listener.Event{Kind: listener.Opened, User: "alice", Service: "ssh", Src: client, Time: time.Now()})
	}
	emit(listener.Event{Kind: listener.Opened, User: "bob", Service: "ssh", Src: client, Time: time.Now()})
	text := buf.String()
	if opens, hi := strings.Count(text, `"user":"alice"`), openBurst*2+n/sampleEvery; opens < openBurst || opens > hi {
		t.Errorf("%d open lines for alice's %d openings, want %d..%d", opens, n, openBurst, hi)
	}
	if !strings.Contains(text, `"user":"bob"`) {
		t.Errorf("bob's opening after alice's burst is not logged")
	}
	if got := len(d.fw.(*fakeFirewall).matching("allow ")); got != n+1 {
		t.Errorf("%d allows, want %d: sampling the lines must not drop an opening", got, n+1)
	}
}
