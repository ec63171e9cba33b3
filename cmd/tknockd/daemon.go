package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
)

// deps are the parts of the daemon that touch the system. Tests replace
// them with fakes; productionDeps has the real ones.
type deps struct {
	openCapture     func(iface string, ranges []inet.Range, pf *capture.Prefilter) (capture.Reader, error)
	openPrefilter   func(hold time.Duration) (*capture.Prefilter, error)       // nil: never a prefilter
	openFirewall    func(cfg nft.Config, log zerolog.Logger) (firewall, error) // opens, changes nothing
	checkInterfaces func(c *Config) error
	listen          func(network, addr string) (net.Listener, error)
	now             func() time.Time
	hup             <-chan os.Signal // each receive is a reload request
}

func productionDeps(hup <-chan os.Signal) deps {
	return deps{
		openCapture: func(iface string, ranges []inet.Range, pf *capture.Prefilter) (capture.Reader, error) {
			c, err := capture.Listen(capture.Config{Interface: iface, Ranges: ranges, Prefilter: pf})
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		openPrefilter: capture.NewPrefilter,
		openFirewall: func(cfg nft.Config, log zerolog.Logger) (firewall, error) {
			t, err := nft.Open(cfg, nft.WithLogger(log))
			if err != nil {
				return nil, err
			}
			return t, nil
		},
		checkInterfaces: checkInterfaces,
		listen:          net.Listen,
		now:             time.Now,
		hup:             hup,
	}
}

// daemon is a running tknockd: the tracker fed by the capture, the
// firewall it opens, the reload loop and the metrics endpoint.
type daemon struct {
	log     zerolog.Logger
	rejects zerolog.Logger // log for reject lines, sampled
	deps    deps

	fw   firewall
	pf   *capture.Prefilter // nil: the captures have the classic filter
	tr   *listener.Tracker
	dec  *listener.Decoder
	feed *capture.Group

	// cfg is the configuration in force; prev the one before the latest
	// reload. Between a reload and the run loop's next knock, the
	// tracker may still report openings of the old users, whose services
	// the new configuration may lack: emit looks in prev for those.
	cfg, prev atomic.Pointer[Config]
	users     atomic.Pointer[[]*totpseq.Enrollment] // in force
	started   time.Time

	mu       sync.Mutex        // guards openings
	openings map[string]uint64 // successful openings by service

	openErrors, reloadsOK, reloadsFailed atomic.Uint64
	lastReload                           atomic.Int64 // Unix seconds of the latest successful (re)load
}

// trackerConfig is the tracker configuration of c.
func trackerConfig(c *Config, now func() time.Time) listener.Config {
	tc := listener.DefaultConfig()
	tc.Skew = c.Skew
	tc.GapMax = c.GapMax
	tc.SeqTimeout = c.SeqTimeout
	if c.StateCapacity != 0 {
		tc.Capacity = c.StateCapacity
	}
	if c.ReplayCapacity != 0 {
		tc.ReplayCapacity = c.ReplayCapacity
	}
	tc.Now = now
	return tc
}

// trackerConfig is trackerConfig(c) with the anchors published to the
// prefilter.
func (d *daemon) trackerConfig(c *Config) listener.Config {
	tc := trackerConfig(c, d.deps.now)
	if d.pf != nil {
		tc.Anchors = d.publishAnchors
	}
	return tc
}

// publishAnchors hands the anchors of a new anchor table to the
// prefilter. Publish writes them to memory the kernel shares with the
// process and has no error short of a bug; should one come, the prefilter
// keeps the anchors it had, knocks at the new ones are dropped until the
// next table, and it is logged as an error.
func (d *daemon) publishAnchors(a listener.AnchorPorts) {
	if err := d.pf.Publish(a); err != nil {
		d.log.Error().Err(err).Msg("prefilter: anchors not updated")
	}
}

// openPrefilter opens the eBPF prefilter as c.Prefilter says: nil with
// "off", or with "auto" when the kernel refuses it (logged).
func openPrefilter(c *Config, dp deps, log zerolog.Logger) (*capture.Prefilter, error) {
	if c.Prefilter == "off" || dp.openPrefilter == nil {
		return nil, nil
	}
	pf, err := dp.openPrefilter(c.SeqTimeout)
	if err != nil {
		if c.Prefilter == "on" {
			return nil, fmt.Errorf("%w (prefilter = \"on\"; \"auto\" would fall back to the classic filter)", err)
		}
		log.Warn().Err(err).Msg("prefilter unavailable: the captures use the classic filter, which passes every knock into the ranges")
		return nil, nil
	}
	log.Info().Str("hold", c.SeqTimeout.String()).Msg("prefilter loaded: knocks that cannot start or continue a sequence are dropped in the kernel")
	return pf, nil
}

func trackerUsers(users []*totpseq.Enrollment) []listener.User {
	out := make([]listener.User, len(users))
	for i, u := range users {
		out[i] = listener.User{Name: u.Name, Params: u.Params}
	}
	return out
}

// runDaemon runs the daemon for c and users until ctx is done. It starts
// in an order that leaves the firewall alone unless everything else is in
// place: the tracker (validating the users once more), the interfaces and
// the capture, the metrics listener, and only then the firewall. It logs
// "ready" when knocks can open, and returns nil when ctx ends.
func runDaemon(ctx context.Context, c *Config, users []*totpseq.Enrollment, dp deps, log zerolog.Logger) error {
	d := &daemon{
		log:      log,
		rejects:  log.Sample(newSampler()),
		deps:     dp,
		started:  dp.now(),
		openings: make(map[string]uint64),
	}
	d.cfg.Store(c)
	d.prev.Store(c)
	d.users.Store(&users)

	if err := dp.checkInterfaces(c); err != nil {
		return err
	}
	pf, err := openPrefilter(c, dp, log)
	if err != nil {
		return err
	}
	if pf != nil {
		defer pf.Close()
		d.pf = pf
	}
	tr, err := listener.NewTracker(d.trackerConfig(c), trackerUsers(users), dp.now(), d.emit)
	if err != nil {
		return err
	}
	d.tr = tr
	ranges := tr.Ranges()
	d.dec = listener.NewDecoder(ranges)
	open := func(iface string, ranges []inet.Range) (capture.Reader, error) {
		return dp.openCapture(iface, ranges, pf)
	}
	d.feed, err = capture.OpenGroup(c.Interfaces, ranges, open, log)
	if err != nil {
		return err
	}
	defer d.feed.Close()

	var metricsLn net.Listener
	if c.MetricsListen != "" {
		metricsLn, err = dp.listen("tcp", c.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	d.fw, err = dp.openFirewall(nftConfig(c, users), log)
	if err != nil {
		return err
	}
	defer d.fw.Close()
	if err := d.fw.Ensure(); err != nil {
		return err
	}
	d.lastReload.Store(dp.now().Unix())

	ifaces := c.Interfaces
	if c.AllInterfaces() {
		ifaces = []string{"any"}
	}
	log.Info().Str("event", "ready").Int("users", len(users)).Strs("interfaces", ifaces).
		Str("firewall", c.Firewall.Mode).Str("realm", c.Realm).Msg("ready")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer cancel() // the capture ended: stop the rest too
		return listener.Run(gctx, d.feed, d.dec, d.tr)
	})
	if metricsLn != nil {
		g.Go(func() error {
			return serveMetrics(gctx, metricsLn, metricsHandler(d.collect), log)
		})
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-dp.hup:
				d.reload()
			}
		}
	})
	err = g.Wait()
	if err != nil {
		return err
	}
	log.Info().Str("event", "stop").Msg("stopped")
	return nil
}

// rejectReason names the reject reasons in logs and metrics.
var rejectReason = map[listener.EventKind]string{
	listener.Replay:     "replay",
	listener.Expired:    "expired",
	listener.ClockSkew:  "clock_skew",
	listener.ReplayFull: "replay_full",
}

var rejectMessage = map[listener.EventKind]string{
	listener.Replay:     "sequence rejected: used before",
	listener.Expired:    "sequence rejected: its window has passed",
	listener.ClockSkew:  "sequence rejected: probable clock skew",
	listener.ReplayFull: "sequence rejected: replay record full",
}

// emit handles a completed sequence. The tracker calls it from the run
// loop's goroutine.
func (d *daemon) emit(ev listener.Event) {
	src := ev.Src.String()
	if ev.Kind != listener.Opened {
		d.rejects.Warn().Str("event", "reject").Str("reason", rejectReason[ev.Kind]).Str("src", src).
			Str("user", ev.User).Str("service", ev.Service).Int("offset", ev.Offset).Msg(rejectMessage[ev.Kind])
		return
	}
	c := d.cfg.Load()
	svc, ok := c.Services[ev.Service]
	if !ok {
		svc, ok = d.prev.Load().Services[ev.Service]
	}
	if !ok {
		// The users are checked against the services at every (re)load.
		d.openErrors.Add(1)
		d.log.Error().Str("event", "open_failed").Str("user", ev.User).Str("service", ev.Service).Str("src", src).
			Msg("service is not configured")
		return
	}
	if err := d.fw.Allow(ev.Src, svc, c.OpenFor); err != nil {
		d.openErrors.Add(1)
		d.log.Error().Err(err).Str("event", "open_failed").Str("user", ev.User).Str("service", ev.Service).
			Str("src", src).Msg("opening failed")
		return
	}
	d.mu.Lock()
	d.openings[ev.Service]++
	d.mu.Unlock()
	// How long after the kernel received the last knock the grant was in
	// place: the daemon's share of the client's wait.
	delay := d.deps.now().Sub(ev.Time)
	d.log.Info().Str("event", "open").Str("user", ev.User).Str("service", ev.Service).Str("src", src).
		Int("offset", ev.Offset).Str("open_for", c.OpenFor.String()).
		Float64("delay_ms", float64(delay.Microseconds())/1000).Msg("access opened")
}

// reload re-reads the configuration file and the users directory and
// applies them, keeping in-progress knocks, live grants and the replay
// record. Anything that fails before the change is applied leaves the
// daemon as it was, and is logged.
func (d *daemon) reload() {
	if err := d.applyReload(); err != nil {
		d.reloadsFailed.Add(1)
		d.log.Error().Err(err).Str("event", "reload_failed").
			Msg("reload failed; running on the configuration loaded before")
	}
}

func (d *daemon) applyReload() error {
	old := d.cfg.Load()
	oldUsers := *d.users.Load()
	c, err := loadConfig(old.Path)
	if err != nil {
		return err
	}
	users, err := loadUsers(c)
	if err != nil {
		return err
	}
	d.restartOnly(old, c)
	c.StateCapacity = old.StateCapacity // the tracker's table is sized once
	now := d.deps.now()
	tc := d.trackerConfig(c)

	// The firewall first: its update is atomic and keeps the old rules on
	// error. It refuses a change of mode or table.
	if err := d.fw.Update(nftConfig(c, users)); err != nil {
		return err
	}
	// The new services are in place before the tracker can report the new
	// users (see emit).
	d.prev.Store(old)
	d.cfg.Store(c)
	rollback := func(err error) error {
		d.cfg.Store(old)
		if ferr := d.fw.Update(nftConfig(old, oldUsers)); ferr != nil {
			err = errors.Join(err, fmt.Errorf("restore the firewall: %w", ferr))
		}
		return err
	}
	if err := d.tr.SetConfig(tc, now); err != nil {
		return rollback(err)
	}
	if d.pf != nil {
		// Sources are held for at least the longest sequence. A shorter
		// hold takes effect at the next generation; until then sources are
		// held as long as before.
		if err := d.pf.SetHold(c.SeqTimeout); err != nil {
			d.log.Error().Err(err).Msg("reload: prefilter hold not updated")
		}
	}
	if err := d.tr.SetUsers(trackerUsers(users), now); err != nil {
		if terr := d.tr.SetConfig(d.trackerConfig(old), now); terr != nil {
			err = errors.Join(err, terr)
		}
		return rollback(err)
	}
	d.users.Store(&users)
	ranges := d.tr.Ranges()
	d.dec.SetRanges(ranges)
	if err := d.feed.SetRanges(ranges); err != nil {
		// The users are in; the kernel filter may still pass the old
		// ranges only. Rare (the kernel refused a filter it took before).
		d.log.Error().Err(err).Msg("reload: capture filter not updated")
	}
	d.lastReload.Store(now.Unix())
	d.reloadsOK.Add(1)
	d.log.Info().Str("event", "reload").Int("users", len(users)).Strs("services", c.ServiceNames()).
		Msg("configuration reloaded")
	return nil
}

// restartOnly warns about settings a reload does not change.
func (d *daemon) restartOnly(old, c *Config) {
	var keys []string
	if !slices.Equal(old.Interfaces, c.Interfaces) {
		keys = append(keys, "interfaces")
	}
	if old.MetricsListen != c.MetricsListen {
		keys = append(keys, "metrics.listen")
	}
	if old.LogLevel != c.LogLevel || old.LogFormat != c.LogFormat {
		keys = append(keys, "log")
	}
	if old.StateCapacity != c.StateCapacity {
		keys = append(keys, "state_capacity")
	}
	if old.Prefilter != c.Prefilter {
		keys = append(keys, "prefilter")
	}
	if len(keys) > 0 {
		d.log.Warn().Strs("fields", keys).Msg("reload: these settings changed and take effect at the next restart")
	}
}

// collect writes the metrics.
func (d *daemon) collect(e *expo) {
	ds := d.dec.Stats()
	cs := d.feed.Stats()
	ts := d.tr.Stats()
	e.counter("tknock_capture_packets_total", "Frames that passed the kernel's knock filter (PACKET_STATISTICS).", cs.Packets)
	e.counter("tknock_capture_drops_total", "Frames the kernel dropped because the capture ring was full.", cs.Drops)
	e.counter("tknock_capture_express_frames_total", "Frames read through the capture's express socket (light traffic, no ring delay) rather than the ring.", cs.Express)
	if d.pf != nil {
		if ps, err := d.pf.Stats(); err == nil {
			e.family("tknock_prefilter_passed_total", "counter", "Knocks the eBPF prefilter passed in the kernel, by reason: at an anchor port (its source then marked as seen), or from a source marked as seen.")
			e.sample("tknock_prefilter_passed_total", float64(ps.Anchors), "reason", "anchor")
			e.sample("tknock_prefilter_passed_total", float64(ps.Tracked), "reason", "tracked")
			e.gauge("tknock_prefilter_hold_seconds", "How long the prefilter remembers a source seen at an anchor port, at least: seq_timeout.", d.pf.Hold().Seconds())
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

// logLevel parses a --log-level value; "" means def.
func logLevel(s string, def zerolog.Level) (zerolog.Level, error) {
	switch s {
	case "":
		return def, nil
	case "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return def, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

// logFormat checks a --log-format value; "" means def.
func logFormat(s, def string) (string, error) {
	switch s {
	case "":
		return def, nil
	case "auto", "json", "console":
		return s, nil
	}
	return def, fmt.Errorf("--log-format %q: want json, console or auto", s)
}
