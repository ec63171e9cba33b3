package nft

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"github.com/tknock/tknock/internal/testkit"
)

// logBuffer collects a Table's log lines; safe for concurrent use.
type logBuffer struct{ testkit.SyncBuffer }

// count returns how many times s occurs in the lines so far.
func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

func watch(t *testing.T, ns interface{ Fd(testing.TB) int }, cfg Config) (*Table, *logBuffer) {
	t.Helper()
	logs := new(logBuffer)
	tb, err := Open(cfg, WithNetNSFd(ns.Fd(t)), WithLogger(zerolog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		tb.Close()
	})
	return tb, logs
}

// eventually polls cond every 5ms for up to limit and returns how long it
// took to hold, or fails the test.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestWatchHealsFlush flushes the ruleset, deletes a rule and flushes a
// chain under a watched table: each time the table is rebuilt as built,
// with the live grants and the time they had left.
func TestWatchHealsFlush(t *testing.T) {
	ns := newNS(t)
	tb, logs := watch(t, ns, testConfig)
	allow(t, tb, "192.0.2.7", both, time.Minute)
	allow(t, tb, "2001:db8::7", ssh, 30*time.Second)
	want := []string{"192.0.2.7 tcp/22", "192.0.2.7 udp/5353", "2001:db8::7 tcp/22"}
	golden := testGolden(t)
	healed := func() bool {
		out, err := ns.Run("nft", "list", "ruleset")
		return err == nil && withoutGrants(out) == golden
	}

	for i, damage := range [][]string{
		{"flush", "ruleset"},
		{"flush", "chain", "inet", "tknock", "guard"},
		{"delete", "chain", "inet", "tknock", "prerouting"},
		{"flush", "set", "inet", "tknock", "protected"},
		{"add", "rule", "inet", "tknock", "input", "accept"},
	} {
		ns.MustRun(t, "nft", damage...)
		took := eventually(t, 5*time.Second, "nft "+strings.Join(damage, " ")+": table rebuilt", healed)
		t.Logf("nft %s: healed in %v", strings.Join(damage, " "), took)
		eventually(t, time.Second, "rebuild logged", func() bool { return logs.count(`"event":"table_rebuilt"`) == i+1 })
		if diff := cmp.Diff(want, liveGrants(t, tb, 20*time.Second)); diff != "" {
			t.Errorf("after nft %s: grants (-want +got)\n%s", strings.Join(damage, " "), diff)
		}
	}

	// Our own rebuild (a reload) is no damage: nothing more is rebuilt.
	if err := tb.Apply(testConfig); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := logs.count(`"event":"table_rebuilt"`); n != 5 {
		t.Errorf("%d rebuilds logged after an Apply, want still 5", n)
	}

	// Teardown is meant: the table stays gone.
	if err := tb.Teardown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if out, err := ns.Run("nft", "list", "tables"); err != nil || strings.Contains(out, "tknock") {
		t.Errorf("nft list tables after Teardown under Watch: %q, %v; want no tknock", out, err)
	}
}

// TestWatchRestoresAcrossRestart: a new Table (a restarted daemon) learns
// the grants in the sets at its first Apply and restores them after a
// flush.
func TestWatchRestoresAcrossRestart(t *testing.T) {
	ns := newNS(t)
	old := open(t, ns, testConfig)
	ensure(t, old)
	allow(t, old, "192.0.2.9", ssh, time.Minute)
	old.Close()
	tb, _ := watch(t, ns, testConfig)
	ns.MustRun(t, "nft", "flush", "ruleset")
	eventually(t, 5*time.Second, "grant restored", func() bool {
		g, err := tb.Grants()
		return err == nil && len(g) == 1
	})
	if diff := cmp.Diff([]string{"192.0.2.9 tcp/22"}, liveGrants(t, tb, 50*time.Second)); diff != "" {
		t.Errorf("grants (-want +got)\n%s", diff)
	}
}

// TestWatchExternal: the administrator's sets vanish (their ruleset is
// flushed) and come back (reloaded): Watch logs the loss as an error, Allow
// says why it fails, and the live grants are put back into the new sets.
func TestWatchExternal(t *testing.T) {
	ns := newNS(t)
	admin := writeTemp(t, `table inet filter {
	set tknock4 {
		type ipv4_addr . inet_proto . inet_service
		flags timeout
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr . meta l4proto . th dport @tknock4 accept
		meta l4proto . th dport { tcp . 22 } drop
	}
}
`)
	ns.MustRun(t, "nft", "-f", admin)
	tb, logs := watch(t, ns, Config{External: &ExternalSets{Family: "inet", Table: "filter", Set4: "tknock4"}})
	allow(t, tb, "192.0.2.7", ssh, time.Minute)

	ns.MustRun(t, "nft", "flush", "ruleset")
	eventually(t, 5*time.Second, "loss logged", func() bool { return logs.count(`"event":"external_sets_missing"`) == 1 })
	if err := tb.Allow(netip.MustParseAddr("192.0.2.8"), ssh, time.Minute); err == nil || !strings.Contains(err.Error(), "external sets are missing") {
		t.Errorf("Allow while the sets are gone: error = %v, want one saying they are missing", err)
	}

	ns.MustRun(t, "nft", "-f", admin)
	eventually(t, 5*time.Second, "return logged", func() bool { return logs.count(`"event":"external_sets_back"`) == 1 })
	if out := ns.MustRun(t, "nft", "list", "set", "inet", "filter", "tknock4"); !strings.Contains(out, "192.0.2.7 . tcp . 22 timeout") {
		t.Errorf("the grant was not restored into the new set:\n%s", out)
	}
	allow(t, tb, "192.0.2.8", ssh, time.Minute)

	// Deleted and created again in one transaction, as `nft -f` of a file
	// that starts with "flush ruleset" does: the grants are put back.
	ns.MustRun(t, "nft", "-f", writeTemp(t, "flush ruleset\ninclude \""+admin+"\"\n"))
	eventually(t, 5*time.Second, "restore logged", func() bool { return logs.count(`"event":"external_sets_recreated"`) == 1 })
	out := ns.MustRun(t, "nft", "list", "set", "inet", "filter", "tknock4")
	for _, src := range []string{"192.0.2.7", "192.0.2.8"} {
		if !strings.Contains(out, src+" . tcp . 22 timeout") {
			t.Errorf("the grant of %s was not restored into the set created again:\n%s", src, out)
		}
	}
}
