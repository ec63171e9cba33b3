package daemon

import (
	"context"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tknock/tknock/internal/config"
)

// What the metrics endpoint publishes, and why no series is an oracle
// (issue 15; deploy/README.md lists the series for operators).
//
// A reader may scrape after every knock. Whatever the tracker or the
// prefilter decided about a knock (an anchor matched, a sequence started or
// reset, a source now tracked, a frame passed to the ring) would tell a
// knock at an anchor or an expected port from a knock elsewhere, one port
// at a time, and so the sequence. Even a count of frames that reached
// userspace says it: the prefilter drops the others in the kernel. So:
//
//   - live, only what depends on the configuration and the clock: users,
//     reloads, the start time, the tracker's capacity, the prefilter's hold,
//     the window's length;
//   - once per window (metrics.window, aligned to the clock), the totals up
//     to the end of the latest whole window, of counts that no decision
//     about a knock changes: the knocks into the ranges counted before any
//     decision (the prefilter's three outcomes summed, or the classic
//     filter's count, which passes every knock into the ranges), frames the
//     ring dropped, and the outcomes of completed sequences (openings by
//     service, opening errors, rejects by reason), which only a knocker who
//     already holds a whole sequence can cause, and sees through the door;
//   - nothing else, unless metrics.debug adds the per-knock counters, live:
//     an oracle, for benchmarks.
//
// No Go runtime or process collector is registered: heap allocations, CPU
// time and resident memory all grow with the work a knock causes, more for
// an anchor than for a miss.

// totals are the counts a window publishes: running totals since the
// start, taken at end.
type totals struct {
	end        time.Time
	knocks     uint64 // knocks into the ranges, counted before any decision
	drops      uint64 // frames that found the capture ring full
	openings   map[string]uint64
	openErrors uint64
	rejects    map[string]uint64 // completed sequences that opened nothing, by reason
}

// take returns the totals now, at time end. A prefilter whose counters
// cannot be read leaves knocks at prev's.
func (d *daemon) take(end time.Time, prev *totals) *totals {
	t := &totals{end: end, rejects: make(map[string]uint64, len(rejectReason))}
	cs := d.f.feed.Stats()
	t.knocks, t.drops = cs.Packets, cs.Drops
	if d.f.pf != nil {
		if prev != nil {
			t.knocks = prev.knocks
		}
		if ps, err := d.f.pf.Stats(); err == nil {
			t.knocks = ps.Anchors + ps.Tracked + ps.Dropped
		}
	}
	ts := d.tr.Stats()
	t.rejects["replay"], t.rejects["expired"] = ts.Replays, ts.Expired
	t.rejects["clock_skew"], t.rejects["replay_full"] = ts.ClockSkews, ts.ReplayFull
	t.rejects["user_quota"] = ts.UserQuota
	t.openErrors = d.openErrors.Load()
	d.mu.Lock()
	t.openings = maps.Clone(d.openings)
	d.mu.Unlock()
	for svc := range d.cfg.Load().Services {
		if _, ok := t.openings[svc]; !ok {
			t.openings[svc] = 0
		}
	}
	return t
}

// metrics is the endpoint: the latest window's totals and the registry
// that publishes them.
type metrics struct {
	d   *daemon
	win atomic.Pointer[totals]
}

// serveMetrics publishes the windows and serves the endpoint on ln until
// ctx is done.
func (d *daemon) serveMetrics(ctx context.Context, ln net.Listener) error {
	m := &metrics{d: d}
	m.win.Store(d.take(d.deps.now(), nil))
	reg := prometheus.NewRegistry() // without the default Go and process collectors
	reg.MustRegister(m)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.publish(ctx)
	}()
	err := serveHTTP(ctx, ln, mux, d.log)
	cancel()
	<-done
	return err
}

// publish takes the totals at the end of every window until ctx is done.
// The windows are aligned to the clock (multiples of the length since the
// zero time), so they end at the same instants whatever the knocks.
func (m *metrics) publish(ctx context.Context) {
	for {
		w := m.d.cfg.Load().Metrics.Window // a reload may change it
		if w <= 0 {
			w = config.DefaultMetricsWindow
		}
		now := m.d.deps.now()
		end := now.Truncate(w).Add(w) // after now
		t := time.NewTimer(end.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		m.win.Store(m.d.take(end, m.win.Load()))
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The published series; deploy/README.md explains each.
var (
	// Live: the configuration and the clock.
	descUsers        = desc("tknock_users", "Enrolled users.")
	descReloads      = desc("tknock_reloads_total", "Reloads (SIGHUP), by result.", "result")
	descLastReload   = desc("tknock_last_reload_success_timestamp_seconds", "When the configuration in force was loaded.")
	descStart        = desc("tknock_start_time_seconds", "When the daemon started.")
	descCapacity     = desc("tknock_tracked_sources_capacity", "Sources that can be tracked at once.")
	descActive       = desc("tknock_prefilter_active", "1 when the captures filter with the eBPF prefilter, 0 when with the classic filter (prefilter = \"off\", or \"auto\" and the kernel refused it: see the log).")
	descHold         = desc("tknock_prefilter_hold_seconds", "How long the eBPF prefilter remembers a source seen at an anchor port, at least: seq_timeout. Absent without the prefilter.")
	descWindow       = desc("tknock_metrics_window_seconds", "Length of the windows the counters of traffic and events are published in (metrics.window).")
	descWindowEnd    = desc("tknock_metrics_window_end_timestamp_seconds", "End of the latest window published: the counters of traffic and events are their totals up to this instant.")
	descKnocks       = desc("tknock_knocks_received_total", "Knocks into the knock ranges the kernel received, counted before any decision about them; totals up to the end of the latest window.")
	descDrops        = desc("tknock_capture_drops_total", "Frames the kernel dropped because the capture ring was full; totals up to the end of the latest window.")
	descOpenings     = desc("tknock_openings_total", "Accesses opened in the firewall, by service; totals up to the end of the latest window.", "service")
	descOpenErrors   = desc("tknock_opening_errors_total", "Completed sequences the firewall failed to open; totals up to the end of the latest window.")
	descRejected     = desc("tknock_sequences_rejected_total", "Completed sequences that opened nothing, by reason; totals up to the end of the latest window.", "reason")
	descDebugEnabled = desc("tknock_metrics_debug", "1 when metrics.debug publishes the per-knock counters below: an oracle of the anchor ports, for benchmarks only.")

	// metrics.debug: per knock, live.
	descCapPackets = desc("tknock_capture_packets_total", "DEBUG, an oracle: frames that passed the kernel's filter (PACKET_STATISTICS).")
	descExpress    = desc("tknock_capture_express_frames_total", "DEBUG, an oracle: frames read through the capture's express socket rather than the ring.")
	descPfPassed   = desc("tknock_prefilter_passed_total", "DEBUG, an oracle: knocks the eBPF prefilter passed, by reason.", "reason")
	descPfDropped  = desc("tknock_prefilter_dropped_total", "DEBUG, an oracle: knocks the eBPF prefilter dropped.")
	descFrames     = desc("tknock_frames_total", "DEBUG, an oracle: frames read from the capture.")
	descKnockPkts  = desc("tknock_knock_packets_total", "DEBUG, an oracle: frames read that decoded as knocks.")
	descIgnored    = desc("tknock_frames_ignored_total", "DEBUG, an oracle: well-formed frames read that are not knocks.")
	descMalformed  = desc("tknock_frames_malformed_total", "DEBUG, an oracle: frames read that could not be decoded.")
	descStarted    = desc("tknock_sequences_started_total", "DEBUG, an oracle: knocks that matched the first port of a sequence.")
	descResets     = desc("tknock_sequence_resets_total", "DEBUG, an oracle: knocks that broke every sequence a source was following.")
	descTimeouts   = desc("tknock_sequence_timeouts_total", "DEBUG, an oracle: sequences dropped for gap_max or seq_timeout.")
	descTracked    = desc("tknock_tracked_sources", "DEBUG, an oracle: sources part-way through a sequence.")
	descEvictions  = desc("tknock_source_evictions_total", "DEBUG, an oracle: sources pushed out of the full table.")
	descBuilds     = desc("tknock_anchor_table_builds_total", "DEBUG: anchor tables built.")
	descBuildTime  = desc("tknock_anchor_table_rebuild_seconds", "DEBUG: time the latest anchor table build took.")
	descCandidates = desc("tknock_anchor_table_candidates", "DEBUG: entries of the current anchor table.")
)

// Describe sends every series the endpoint may publish.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descUsers, descReloads, descLastReload, descStart, descCapacity, descActive, descHold, descWindow, descWindowEnd,
		descKnocks, descDrops, descOpenings, descOpenErrors, descRejected, descDebugEnabled,
		descCapPackets, descExpress, descPfPassed, descPfDropped, descFrames, descKnockPkts, descIgnored,
		descMalformed, descStarted, descResets, descTimeouts, descTracked, descEvictions, descBuilds,
		descBuildTime, descCandidates,
	} {
		ch <- d
	}
}

// Collect sends the series: the live ones, the latest window's totals,
// and with metrics.debug the per-knock ones.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	d := m.d
	c := d.cfg.Load()
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	ts := d.tr.Stats()
	gauge(descUsers, float64(len(*d.users.Load())))
	counter(descReloads, d.reloadsOK.Load(), "ok")
	counter(descReloads, d.reloadsFailed.Load(), "error")
	gauge(descLastReload, float64(d.lastReload.Load()))
	gauge(descStart, float64(d.started.Unix()))
	gauge(descCapacity, float64(ts.Capacity))
	active := 0.0
	if d.f.pf != nil {
		active = 1
		gauge(descHold, d.f.pf.Hold().Seconds())
	}
	gauge(descActive, active)
	gauge(descWindow, c.Metrics.Window.Seconds())

	w := m.win.Load()
	if c.Metrics.Debug {
		w = d.take(d.deps.now(), w) // nothing to hide: the totals now
	}
	gauge(descWindowEnd, float64(w.end.UnixMilli())/1000)
	counter(descKnocks, w.knocks)
	counter(descDrops, w.drops)
	for _, svc := range slices.Sorted(maps.Keys(w.openings)) {
		counter(descOpenings, w.openings[svc], svc)
	}
	counter(descOpenErrors, w.openErrors)
	for _, r := range slices.Sorted(maps.Keys(w.rejects)) {
		counter(descRejected, w.rejects[r], r)
	}
	if !c.Metrics.Debug {
		gauge(descDebugEnabled, 0)
		return
	}
	gauge(descDebugEnabled, 1)
	cs := d.f.feed.Stats()
	ds := d.f.dec.Stats()
	counter(descCapPackets, cs.Packets)
	counter(descExpress, cs.Express)
	if d.f.pf != nil {
		if ps, err := d.f.pf.Stats(); err == nil {
			counter(descPfPassed, ps.Anchors, "anchor")
			counter(descPfPassed, ps.Tracked, "tracked")
			counter(descPfDropped, ps.Dropped)
		}
	}
	counter(descFrames, ds.Frames)
	counter(descKnockPkts, ds.Knocks)
	counter(descIgnored, ds.Ignored)
	counter(descMalformed, ds.Malformed)
	counter(descStarted, ts.Started)
	counter(descResets, ts.Resets)
	counter(descTimeouts, ts.Timeouts)
	gauge(descTracked, float64(ts.Tracked))
	counter(descEvictions, ts.Evictions)
	counter(descBuilds, ts.TableBuilds)
	gauge(descBuildTime, ts.TableBuild.Seconds())
	gauge(descCandidates, float64(ts.Candidates))
}
