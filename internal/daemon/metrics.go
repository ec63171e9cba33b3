package daemon

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// expo writes the Prometheus text exposition format (version 0.0.4), the
// few parts of it the daemon needs: counters and gauges, with labels.
type expo struct {
	buf bytes.Buffer
}

// family starts a metric family: its HELP and TYPE lines. typ is "counter"
// or "gauge".
func (e *expo) family(name, typ, help string) {
	e.buf.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	e.buf.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample of the family started last. labels are name,
// value pairs.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.buf.WriteString(name)
	if len(labels) > 0 {
		e.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.buf.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		e.buf.WriteByte('}')
	}
	e.buf.WriteByte(' ')
	e.buf.WriteString(strconv.FormatFloat(v, 'f', -1, 64)) // 1000000, not 1e+06
	e.buf.WriteByte('\n')
}

// counter writes a family with a single unlabelled counter sample.
func (e *expo) counter(name, help string, v uint64) {
	e.family(name, "counter", help)
	e.sample(name, float64(v))
}

// gauge writes a family with a single unlabelled gauge sample.
func (e *expo) gauge(name, help string, v float64) {
	e.family(name, "gauge", help)
	e.sample(name, v)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// metricsHandler serves what collect writes, as GET /metrics.
func metricsHandler(collect func(*expo)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var e expo
		collect(&e)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(e.buf.Bytes())
	})
	return mux
}

// serveMetrics serves h on ln until ctx is done, then shuts the server
// down, giving requests in flight a second.
func serveMetrics(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// collect writes the metrics.
func (d *daemon) collect(e *expo) {
	ds := d.f.dec.Stats()
	cs := d.f.feed.Stats()
	ts := d.tr.Stats()
	e.counter("tknock_capture_packets_total", "Frames that passed the kernel's knock filter (PACKET_STATISTICS).", cs.Packets)
	e.counter("tknock_capture_drops_total", "Frames the kernel dropped because the capture ring was full.", cs.Drops)
	e.counter("tknock_capture_express_frames_total", "Frames read through the capture's express socket (light traffic, no ring delay) rather than the ring.", cs.Express)
	active := 0.0
	if d.f.pf != nil {
		active = 1
	}
	e.gauge("tknock_prefilter_active", "1 when the captures filter with the eBPF prefilter, 0 when with the classic filter (prefilter = \"off\", or \"auto\" and the kernel refused it: see the log).", active)
	if d.f.pf != nil {
		if ps, err := d.f.pf.Stats(); err == nil {
			e.family("tknock_prefilter_passed_total", "counter", "Knocks the eBPF prefilter passed in the kernel, by reason: at an anchor port (its source then marked as seen), or from a source marked as seen.")
			e.sample("tknock_prefilter_passed_total", float64(ps.Anchors), "reason", "anchor")
			e.sample("tknock_prefilter_passed_total", float64(ps.Tracked), "reason", "tracked")
			e.gauge("tknock_prefilter_hold_seconds", "How long the prefilter remembers a source seen at an anchor port, at least: seq_timeout.", d.f.pf.Hold().Seconds())
			e.counter("tknock_prefilter_dropped_total", "Knocks the eBPF prefilter dropped in the kernel: not at an anchor port, from a source not seen at one within seq_timeout (rule 1).", ps.Dropped)
		}
	}
	e.counter("tknock_frames_total", "Frames read from the capture.", ds.Frames)
	e.counter("tknock_knock_packets_total", "Knock packets seen (frames that decoded as knocks).", ds.Knocks)
	e.counter("tknock_frames_ignored_total", "Well-formed frames that are not knocks.", ds.Ignored)
	e.counter("tknock_frames_malformed_total", "Frames that could not be decoded.", ds.Malformed)
	e.counter("tknock_sequences_started_total", "Knocks that matched the first port of a sequence.", ts.Started)
	e.counter("tknock_sequence_resets_total", "Knocks that broke every sequence a source was following.", ts.Resets)
	e.counter("tknock_sequence_timeouts_total", "Sequences dropped for gap_max or seq_timeout.", ts.Timeouts)
	e.counter("tknock_sequences_completed_total", "Sequences completed, opened or rejected.",
		ts.Opened+ts.Replays+ts.Expired+ts.ClockSkews+ts.ReplayFull)
	e.family("tknock_sequences_rejected_total", "counter", "Completed sequences that opened nothing, by reason.")
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"replay", ts.Replays}, {"expired", ts.Expired}, {"clock_skew", ts.ClockSkews}, {"replay_full", ts.ReplayFull}} {
		e.sample("tknock_sequences_rejected_total", float64(r.n), "reason", r.reason)
	}
	d.mu.Lock()
	openings := maps.Clone(d.openings)
	d.mu.Unlock()
	e.family("tknock_openings_total", "counter", "Accesses opened in the firewall, by service.")
	for _, svc := range slices.Sorted(maps.Keys(openings)) {
		e.sample("tknock_openings_total", float64(openings[svc]), "service", svc)
	}
	e.counter("tknock_opening_errors_total", "Completed sequences the firewall failed to open.", d.openErrors.Load())
	e.gauge("tknock_tracked_sources", "Sources part-way through a sequence.", float64(ts.Tracked))
	e.gauge("tknock_tracked_sources_capacity", "Sources that can be tracked at once.", float64(ts.Capacity))
	e.counter("tknock_source_evictions_total", "Sources pushed out of the full table.", ts.Evictions)
	e.counter("tknock_anchor_table_builds_total", "Anchor tables built.", ts.TableBuilds)
	e.gauge("tknock_anchor_table_rebuild_seconds", "Time the latest anchor table build took.", ts.TableBuild.Seconds())
	e.gauge("tknock_anchor_table_candidates", "Entries of the current anchor table.", float64(ts.Candidates))
	e.gauge("tknock_users", "Enrolled users.", float64(len(*d.users.Load())))
	e.family("tknock_reloads_total", "counter", "Reloads (SIGHUP), by result.")
	e.sample("tknock_reloads_total", float64(d.reloadsOK.Load()), "result", "ok")
	e.sample("tknock_reloads_total", float64(d.reloadsFailed.Load()), "result", "error")
	e.gauge("tknock_last_reload_success_timestamp_seconds", "When the configuration in force was loaded.", float64(d.lastReload.Load()))
	e.gauge("tknock_start_time_seconds", "When the daemon started.", float64(d.started.Unix()))
}
