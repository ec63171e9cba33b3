// Package daemon runs tknockd: the capture feeding the tracker, the
// firewall it opens, reloads, and the metrics endpoint. It owns the state
// of a running daemon and the flows between its parts: the tracker's knock
// ranges to the decoder and the captures, its anchor ports to the eBPF
// prefilter, its openings to the firewall.
package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
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
	checkInterfaces func(c *config.Config) error
	listen          func(network, addr string) (net.Listener, error)
	now             func() time.Time
	hup             <-chan os.Signal // each receive is a reload request
}

// Run runs the daemon for c and users until ctx is done, reloading the
// configuration file and the users directory at each receive from hup. It
// logs "ready" when knocks can open, and returns nil when ctx ends, or the
// error that stopped it (logged by the caller).
func Run(ctx context.Context, c *config.Config, users []*totpseq.Enrollment, hup <-chan os.Signal, log zerolog.Logger) error {
	return runDaemon(ctx, c, users, productionDeps(hup), log)
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
		checkInterfaces: (*config.Config).CheckInterfaces,
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

	fw    firewall
	tr    *listener.Tracker
	state *replayState // the replay record's file; owned by emit's goroutine
	fails *failWatch   // failed attempts per source; owned by emit's goroutine
	opens openSampler  // samples "access opened" per user; owned by emit's goroutine
	f     filters      // what the tracker's anchors and ranges steer

	// cfg is the configuration in force; prev the one before the latest
	// reload. Between a reload and the run loop's next knock, the
	// tracker may still report openings of the old users, whose services
	// the new configuration may lack: emit looks in prev for those.
	cfg, prev atomic.Pointer[config.Config]
	users     atomic.Pointer[[]*totpseq.Enrollment] // in force
	started   time.Time

	mu       sync.Mutex        // guards openings
	openings map[string]uint64 // successful openings by service

	openErrors, reloadsOK, reloadsFailed atomic.Uint64
	lastReload                           atomic.Int64 // Unix seconds of the latest successful (re)load
}

// trackerConfig is c.Tracker() with the daemon's clock, and the anchors
// going to the prefilter if there is one.
func (d *daemon) trackerConfig(c *config.Config) listener.Config {
	tc := c.Tracker()
	tc.Now = d.deps.now
	tc.Reset = d.fails.failed
	if d.f.pf != nil {
		tc.Anchors = d.f.anchors
	}
	return tc
}

// openPrefilter opens the eBPF prefilter as c.Prefilter says: nil with
// "off", or with "auto" when the kernel refuses it (logged).
func openPrefilter(c *config.Config, dp deps, log zerolog.Logger) (*capture.Prefilter, error) {
	if c.Prefilter == "off" || dp.openPrefilter == nil {
		return nil, nil
	}
	pf, err := dp.openPrefilter(c.SeqTimeout)
	if err != nil {
		if c.Prefilter == "on" {
			return nil, fmt.Errorf("%w (prefilter = \"on\"; \"auto\" would fall back to the classic filter)", err)
		}
		// The verifier's log, when there is one, follows the first line:
		// a warning carries the reason, debug the rest.
		reason, detail, _ := strings.Cut(err.Error(), "\n")
		log.Warn().Str("error", reason).
			Str("cost", "rule 1 is no longer applied in the kernel: every knock into the knock ranges, a flood's too, is copied to the daemon and decoded there").
			Str("fix", "run with CAP_BPF (deploy/tknockd.service gives it); prefilter = \"on\" refuses to start without it").
			Msg("prefilter unavailable: falling back to the classic filter")
		if detail != "" {
			log.Debug().Str("detail", detail).Msg("prefilter unavailable: the kernel's answer")
		}
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
func runDaemon(ctx context.Context, c *config.Config, users []*totpseq.Enrollment, dp deps, log zerolog.Logger) error {
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
	d.fails = newFailWatch(log)

	if err := dp.checkInterfaces(c); err != nil {
		return err
	}
	pf, err := openPrefilter(c, dp, log)
	if err != nil {
		return err
	}
	if pf != nil {
		defer pf.Close()
	}
	d.f = filters{log: log, pf: pf}
	tr, err := listener.NewTracker(d.trackerConfig(c), trackerUsers(users), dp.now(), d.emit)
	if err != nil {
		return err
	}
	d.tr = tr
	d.state = openReplayState(c.StateDir, tr, d.periods, dp.now(), log)
	defer d.state.close()
	ranges := tr.Ranges()
	d.f.dec = listener.NewDecoder(ranges)
	open := func(iface string, ranges []inet.Range) (capture.Reader, error) {
		return dp.openCapture(iface, ranges, pf)
	}
	d.f.feed, err = capture.OpenGroup(c.Interfaces, ranges, open, log)
	if err != nil {
		return err
	}
	defer d.f.feed.Close()

	var metricsLn net.Listener
	if c.MetricsListen != "" {
		metricsLn, err = listenMetrics(c.Metrics, dp.listen)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	d.fw, err = dp.openFirewall(c.NFT(users), log)
	if err != nil {
		return err
	}
	defer d.fw.Close()
	if err := d.fw.Apply(c.NFT(users)); err != nil {
		return err
	}
	d.lastReload.Store(dp.now().Unix())

	ifaces := c.Interfaces
	if c.AllInterfaces() {
		ifaces = []string{"any"}
	}
	log.Info().Str("event", "ready").Int("users", len(users)).Strs("interfaces", ifaces).
		Str("firewall", c.Firewall.Mode).Bool("prefilter", d.f.pf != nil).Str("realm", c.Realm).Msg("ready")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer cancel() // the capture ended: stop the rest too
		return listener.Run(gctx, d.f.feed, d.f.dec, d.tr)
	})
	g.Go(func() error { return d.fw.Watch(gctx) }) // heals the table after `nft flush ruleset`
	if metricsLn != nil {
		g.Go(func() error {
			return d.serveMetrics(gctx, metricsLn)
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
	listener.UserQuota:  "user_quota",
}

var rejectMessage = map[listener.EventKind]string{
	listener.Replay:     "sequence rejected: used before",
	listener.Expired:    "sequence rejected: its window has passed",
	listener.ClockSkew:  "sequence rejected: probable clock skew",
	listener.ReplayFull: "sequence rejected: replay record full",
	listener.UserQuota:  "sequence rejected: the user's quota of openings is full",
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
	// Recorded before it opens: a crash between the two refuses the
	// sequence after the restart rather than opening it twice.
	if err := d.state.add(&ev); err != nil {
		d.log.Error().Err(err).Str("event", "state_unwritable").
			Str("risk", "a restart may open this sequence again").Msg("replay record not persisted")
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
	d.opens.user(d.log, ev.User).Info().Str("event", "open").Str("user", ev.User).Str("service", ev.Service).Str("src", src).
		Int("offset", ev.Offset).Str("open_for", c.OpenFor.String()).
		Float64("delay_ms", float64(delay.Microseconds())/1000).Msg("access opened")
}

// generation is what one (re)load of the configuration file and the users
// directory gives. A reload builds and checks the whole of it before any
// part is put in use, so it applies all of it or nothing.
type generation struct {
	cfg     *config.Config
	users   []*totpseq.Enrollment
	fw      nft.Config
	tracker *listener.Staged // the tracker's state for cfg and users
}

// reload re-reads the configuration file and the users directory and
// applies them, keeping in-progress knocks, live grants and the replay
// record. It is called from one goroutine only (the reload loop of
// runDaemon), the owner of every change to the daemon's configuration. A
// reload that fails leaves the daemon as it was, and is logged.
func (d *daemon) reload() {
	next, err := d.prepare()
	if err == nil {
		// The one step that changes the kernel. The update is atomic: on
		// error the old rules stay. It refuses a change of mode or table.
		err = d.fw.Apply(next.fw)
	}
	if err != nil {
		d.reloadsFailed.Add(1)
		d.log.Error().Err(err).Str("event", "reload_failed").
			Msg("reload failed; running on the configuration loaded before")
		return
	}
	d.commit(next)
}

// prepare loads and checks the next generation, the tracker's state
// included. Nothing in use changes.
func (d *daemon) prepare() (*generation, error) {
	old := d.cfg.Load()
	c, err := config.Load(old.Path)
	if err != nil {
		return nil, err
	}
	users, err := config.LoadUsers(c)
	if err != nil {
		return nil, err
	}
	d.restartOnly(old, c)
	c.StateCapacity = old.StateCapacity // the tracker's table is sized once
	st, err := d.tr.Prepare(d.trackerConfig(c), trackerUsers(users), d.deps.now())
	if err != nil {
		return nil, err
	}
	return &generation{cfg: c, users: users, fw: c.NFT(users), tracker: st}, nil
}

// commit puts a prepared generation in use, the firewall already updated.
// It cannot fail.
func (d *daemon) commit(g *generation) {
	// The new services are in place before the tracker can report the new
	// users (see emit).
	d.prev.Store(d.cfg.Load())
	d.cfg.Store(g.cfg)
	d.users.Store(&g.users)
	d.tr.Commit(g.tracker)
	d.f.follow(g.cfg.SeqTimeout, g.tracker.Ranges())
	d.lastReload.Store(d.deps.now().Unix())
	d.reloadsOK.Add(1)
	d.log.Info().Str("event", "reload").Int("users", len(g.users)).Strs("services", g.cfg.ServiceNames()).
		Msg("configuration reloaded")
}

// restartOnly warns about settings a reload does not change.
func (d *daemon) restartOnly(old, c *config.Config) {
	var keys []string
	if !slices.Equal(old.Interfaces, c.Interfaces) {
		keys = append(keys, "interfaces")
	}
	if old.MetricsListen != c.MetricsListen || old.Metrics.SocketGroup != c.Metrics.SocketGroup {
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
