package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/promtest"
	"github.com/tknock/tknock/totpseq"
)

// metricsWindow is metrics.window in the test: short, so that it runs
// quickly.
const metricsWindow = time.Second

// windowEnd is the series that says which window the published counters
// run to: it moves with the clock alone.
const windowEnd = "tknock_metrics_window_end_timestamp_seconds"

// TestMetricsNoOracle is issue 15's attacker: one who reads /metrics after
// every knock. The real tknockd, with the eBPF prefilter on, takes one knock
// at an anchor port and one at another port of the range, each from a
// fresh (spoofed) source, and every series of the real endpoint is
// compared right after each knock and after the next window is published:
// no series may change differently. The published count of knocks must
// move for both.
func TestMetricsNoOracle(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		alice := e.enroll("alice", params{Proto: inet.TCP, Services: []string{"ssh"}})
		d := e.startDaemon(e.writeConfig(config{Metrics: true, MetricsWindow: metricsWindow, Prefilter: "on"}))
		p := alice.enr.Params
		src := e.spoofedAddr
		fresh := func() netip.Addr { src = src.Next(); return src }

		anchor := func(s netip.Addr) uint16 {
			seq, err := totpseq.Sequence(&p, "ssh", totpseq.Window(time.Now(), p.Period), s)
			if err != nil {
				t.Fatal(err)
			}
			return seq[0]
		}
		miss := func(s netip.Addr) uint16 {
			anchors := map[uint16]bool{}
			w := totpseq.Window(time.Now(), p.Period)
			for off := -4; off <= 4; off++ {
				seq, err := totpseq.Sequence(&p, "ssh", w+uint64(int64(off)), s)
				if err != nil {
					t.Fatal(err)
				}
				anchors[seq[0]] = true
			}
			for port := knockLo; port <= knockHi; port++ {
				if !anchors[port] {
					return port
				}
			}
			t.Fatal("every port is an anchor")
			return 0
		}

		// step knocks once from a fresh source at the port pick gives,
		// early in a window: it returns the changes of every series right
		// after the knock (the daemon has had 300 ms) and once that window
		// is published. It tries again, from another fresh source, if the
		// first scrapes straddle a window's end.
		step := func(what string, pick func(netip.Addr) uint16) (now, published map[string]string) {
			for range 5 {
				before := d.waitWindow()
				in := time.Now().Truncate(metricsWindow)
				s := fresh()
				e.sendRaw(e.stranger, s, p.Proto, []uint16{pick(s)})
				time.Sleep(300 * time.Millisecond)
				after := d.metrics()
				if time.Now().Truncate(metricsWindow) != in {
					t.Logf("%s: a window ended between the scrapes; again", what)
					continue
				}
				return promtest.Diff(before, after), promtest.Diff(after, d.waitWindow())
			}
			t.Fatalf("%s: could not scrape twice within one window", what)
			return nil, nil
		}
		aNow, aPub := step("anchor", anchor)
		bNow, bPub := step("other port", miss)
		for _, c := range []struct {
			what string
			a, b map[string]string
		}{{"right after the knock", aNow, bNow}, {"once the window is published", aPub, bPub}} {
			for _, m := range promtest.Mismatch(c.a, c.b, windowEnd) {
				t.Errorf("%s: %s (anchor, other port): the series tells them apart", c.what, m)
			}
		}
		if aPub["tknock_knocks_received_total"] != "1" || bPub["tknock_knocks_received_total"] != "1" {
			t.Errorf("tknock_knocks_received_total moved by %q and %q in the windows of the knocks, want 1 each",
				aPub["tknock_knocks_received_total"], bPub["tknock_knocks_received_total"])
		}
		got := d.metrics()
		delete(got, "tknock_prefilter_hold_seconds") // configuration, live
		delete(got, "tknock_prefilter_active")       // configuration, live
		if got["tknock_metrics_debug"] != 0 || hasPrefix(got, "tknock_prefilter_") != "" {
			t.Errorf("the default endpoint publishes debug series: %v", got)
		}
	})
}

// hasPrefix returns the only series name of m that starts with prefix,
// or a list of them.
func hasPrefix(m map[string]float64, prefix string) string {
	var names []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			names = append(names, k)
		}
	}
	return strings.Join(names, ",")
}

// waitWindow waits for the daemon to publish a window (its end moves) and
// returns that scrape: the next knock falls early in a window.
func (d *daemon) waitWindow() map[string]float64 {
	t := d.e.t
	t.Helper()
	first := d.metrics()[windowEnd]
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if m := d.metrics(); m[windowEnd] != first {
			return m
		}
	}
	t.Fatalf("no window published within 5s")
	return nil
}
