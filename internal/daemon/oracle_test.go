package daemon

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/promtest"
	"github.com/tknock/tknock/totpseq"
)

// clockOnly are the series that depend on the clock alone: the end of the
// latest window published moves with time, whatever the knocks.
var clockOnly = []string{"tknock_metrics_window_end_timestamp_seconds"}

// compareDiffs reports every series whose change differs between a knock
// at an anchor and a knock elsewhere.
func compareDiffs(t *testing.T, what string, anchor, miss map[string]string) {
	t.Helper()
	for _, m := range promtest.Mismatch(anchor, miss, clockOnly...) {
		t.Errorf("%s: %s (anchor, other port): the series tells them apart", what, m)
	}
}

// missPort returns a port of u's range that is the anchor of no service of
// u in any window within reach (skew plus a margin each side), seen from
// src.
func missPort(t *testing.T, u *totpseq.Enrollment, src netip.Addr, skew int) uint16 {
	t.Helper()
	w := totpseq.Window(time.Now(), u.Period)
	anchors := map[uint16]bool{}
	for off := -skew - 3; off <= skew+3; off++ {
		for _, svc := range u.Services {
			seq, err := totpseq.Sequence(&u.Params, svc, w+uint64(int64(off)), src)
			if err != nil {
				t.Fatal(err)
			}
			anchors[seq[0]] = true
		}
	}
	for p := u.Range.Lo; p <= u.Range.Hi; p++ {
		if !anchors[p] && !slices.Contains(u.Exclude, p) {
			return p
		}
	}
	t.Fatalf("no port of %v that is not an anchor", u.Range)
	return 0
}

// TestMetricsNoOracle knocks once at an anchor port and once at another
// port, from two fresh sources, through the daemon's packet path (the fake
// capture, the real decoder and tracker), and scrapes the real endpoint
// before and right after each knock and again after the next window of
// the metrics is published. No series may change differently for the two
// knocks (issue 15, item 1: a reader who scrapes after every knock must
// not find the anchor ports).
func TestMetricsNoOracle(t *testing.T) { synctest.Test(t, testMetricsNoOracle) }

func testMetricsNoOracle(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice")
	h := startHarness(t, "", alice)
	window := h.cfg.Metrics.Window
	scrape := func() map[string]float64 {
		t.Helper()
		synctest.Wait() // the daemon has handled every frame sent
		m, err := promtest.Parse(strings.NewReader(h.metrics()))
		if err != nil {
			t.Fatalf("parse the scrape: %v", err)
		}
		return m
	}
	// nextWindow sleeps until just after the next window of the metrics
	// ends, and its totals are published.
	nextWindow := func() {
		now := time.Now()
		time.Sleep(now.Truncate(window).Add(window).Sub(now) + time.Millisecond)
	}
	// step knocks once at the port that pick returns, from src, with a
	// window boundary and a scrape before it; it returns the changes right
	// after the knock and after the window's publication.
	step := func(src netip.Addr, pick func() uint16) (now, published map[string]string) {
		nextWindow()
		before := scrape()
		h.knockPorts(alice, src, []uint16{pick()})
		after := scrape()
		nextWindow()
		return promtest.Diff(before, after), promtest.Diff(after, scrape())
	}

	srcA, srcB := netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("203.0.113.51")
	aNow, aPub := step(srcA, func() uint16 { return h.sequence(alice, "ssh", 0, srcA)[0] })
	bNow, bPub := step(srcB, func() uint16 { return missPort(t, alice, srcB, h.cfg.Skew) })
	compareDiffs(t, "right after the knock", aNow, bNow)
	compareDiffs(t, "once the window is published", aPub, bPub)
	// The knocks did reach the daemon (the fake capture's kernel counters
	// are constants: the e2e test sees the published count move).
	if n := len(h.linesFrom(0, func(l map[string]any) bool { return l["message"] == "knock frame" })); n != 2 {
		t.Errorf("the daemon logged %d knock frames, want 2", n)
	}
}

// TestMetricsDebugReload: metrics.debug adds the per-knock counters, live,
// and a reload turns it on without a restart.
func TestMetricsDebugReload(t *testing.T) { synctest.Test(t, testMetricsDebugReload) }

func testMetricsDebugReload(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice")
	h := startHarness(t, "", alice)
	h.wantMetrics("tknock_metrics_debug 0")
	if m := h.metrics(); strings.Contains(m, "tknock_frames_total") {
		t.Fatalf("per-knock counters without metrics.debug:\n%s", m)
	}
	doc, err := os.ReadFile(h.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	on := strings.Replace(string(doc), "listen = \"127.0.0.1:9121\"", "listen = \"127.0.0.1:9121\"\ndebug = true", 1)
	if err := os.WriteFile(h.cfg.Path, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	m := h.mark()
	h.hup <- os.Interrupt
	h.waitLogFrom(m, "a reload line", event("reload"))
	h.knockPorts(alice, netip.MustParseAddr("203.0.113.60"), h.sequence(alice, "ssh", 0, netip.MustParseAddr("203.0.113.60"))[:1])
	synctest.Wait()
	// Live: no window has ended since the knock.
	h.wantMetrics("tknock_metrics_debug 1", "tknock_frames_total 1", "tknock_sequences_started_total 1", "tknock_tracked_sources 1",
		"tknock_knocks_received_total 10") // the fake capture's kernel count
}
