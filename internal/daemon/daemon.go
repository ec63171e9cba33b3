// Package daemon runs tknockd: the capture feeding the tracker, the
// firewall it opens, reloads, and the metrics endpoint. It owns the state
// of a running daemon and the flows between its parts: the tracker's knock
// ranges to the decoder and the captures, its anchor ports to the eBPF
// prefilter, its openings to the firewall.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime/debug"
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
	// lock takes the one-daemon-per-instance lock (lockInstance); nil:
	// none.
	lock func(instance string) (io.Closer, error)
	// notify tells the service manager a state change (sdNotify); nil:
	// nobody to tell.
	notify func(state string) error
	// stateDir is where the state file is written (RuntimeDir); "": no
	// state file.
	stateDir string
	// grantQueue is the room for openings waiting for the firewall; 0:
	// defaultGrantQueue.
	grantQueue int
	// setMemoryLimit sets the Go runtime's soft memory limit
	// (debug.SetMemoryLimit); nil: none is set.
	setMemoryLimit func(limit int64)
}

// Run runs the daemon for c until ctx is done: it reads the users
// directory (a bad file is logged and left out; an unreadable directory is
// an error), and reloads the configuration file and the users directory at
// each receive from hup. It logs "ready" when knocks can open, and tells
// systemd (Type=notify). It returns nil when ctx ends, or the error that
// stopped it (logged by the caller).
func Run(ctx context.Context, c *config.Config, hup <-chan os.Signal, log zerolog.Logger) error {
	users, err := config.LoadUsers(c)
	if errors.Is(err, config.ErrUsersDir) {
		return err
	}
	return runDaemon(ctx, c, users, err, productionDeps(hup), log)
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
		lock:            lockInstance,
		notify:          sdNotify,
		stateDir:        RuntimeDir(),
		setMemoryLimit:  func(limit int64) { debug.SetMemoryLimit(limit) },
	}
}

// defaultGrantQueue is the room for openings that wait for the firewall.
// One takes some 50µs; the queue fills only when the kernel holds the
// firewall up (another process's large nftables commit), and then an
// opening beyond it is dropped, counted and logged, rather than the
// capture stalled.
const defaultGrantQueue = 256

// grant is an opening on its way to the firewall.
type grant struct {
	ev  listener.Event
	svc nft.Service
	ttl time.Duration
}

// daemon is a running tknockd: the tracker fed by the capture, the
// firewall it opens, the reload loop and the metrics endpoint.
type daemon struct {
	log     zerolog.Logger
	rejects zerolog.Logger // log for reject lines, sampled
	deps    deps

	fw    firewall
	tr    *listener.Tracker
	state *replayState // the replay record's file; owned by the firewall goroutine (grantLoop)
	fails *failWatch   // failed attempts per source; owned by emit's goroutine
	opens openSampler  // samples "access opened" per user; owned by the firewall goroutine (grantLoop)
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

	// grants carries openings from the run loop to the firewall
	// goroutine (grantLoop), so that a slow firewall never stalls the
	// capture. queueFull counts the openings dropped because it was full
	// (also counted in openErrors).
	grants    chan grant
	queueFull atomic.Uint64

	seq uint64 // (re)loads so far; owned by the reload loop

	goLimit int64 // the Go runtime's soft memory limit in force; owned by the reload loop
}

// setGoLimit sets the Go runtime's soft memory limit (goLimit).
func (d *daemon) setGoLimit(limit int64) {
	if d.deps.setMemoryLimit != nil && limit != d.goLimit {
		d.deps.setMemoryLimit(limit)
	}
	d.goLimit = limit
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

// runDaemon runs the daemon for c and users until ctx is done; bad is
// the error of the users files left out (nil: none). It starts in an order
// that leaves the firewall alone unless everything else is in place: the
// instance lock, the tracker (validating the users once more), the
// interfaces and the capture, the metrics listener, and only then the
// firewall. It logs "ready" when knocks can open, and returns nil when ctx
// ends.
func runDaemon(ctx context.Context, c *config.Config, users []*totpseq.Enrollment, bad error, dp deps, log zerolog.Logger) error {
	d := &daemon{
		log:      log,
		rejects:  log.Sample(newSampler()),
		deps:     dp,
		started:  dp.now(),
		openings: make(map[string]uint64),
		grants:   make(chan grant, cmp.Or(dp.grantQueue, defaultGrantQueue)),
	}
	d.cfg.Store(c)
	d.prev.Store(c)
	d.users.Store(&users)
	d.fails = newFailWatch(log)

	if dp.lock != nil {
		l, err := dp.lock(Instance(c))
		if err != nil {
			return err
		}
		defer l.Close()
	}
	d.logRejectedUsers(bad)
	mem, err := CheckMemory(c, users)
	if err != nil {
		return err
	}
	d.setGoLimit(mem.goLimit(mem.Limit(c)))
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

	// The start's garbage (parsing, netlink, loading the prefilter) goes
	// back to the kernel now rather than at the scavenger's pace: an idle
	// daemon's resident memory is what the administrator compares.
	debug.FreeOSMemory()
	ifaces := c.Interfaces
	if c.AllInterfaces() {
		ifaces = []string{"any"}
	}
	log.Info().Str("event", "ready").Int("users", len(users)).Strs("interfaces", ifaces).
		Str("firewall", c.Firewall.Mode).Bool("prefilter", d.f.pf != nil).Str("realm", c.Realm).
		Str("memory_limit", config.FormatSize(mem.Limit(c))).Str("memory_estimate", aboutSize(mem.Total())).Msg("ready")
	applied := "the configuration and the users directory"
	if bad != nil {
		applied += ", without the rejected users files"
	}
	d.finish("start", &State{OK: bad == nil, Applied: applied, Users: len(users), Errors: Problems(bad)})

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
	g.Go(func() error { return d.grantLoop(gctx) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-dp.hup:
				if err := d.reload(); err != nil {
					return err
				}
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
	select {
	case d.grants <- grant{ev: ev, svc: svc, ttl: c.OpenFor}:
	default:
		d.queueFull.Add(1)
		d.openErrors.Add(1)
		d.rejects.Error().Str("event", "open_failed").Str("reason", "queue_full").Str("user", ev.User).
			Str("service", ev.Service).Str("src", src).
			Msg("opening dropped: the firewall is behind (nftables busy?); the user knocks again")
	}
}

// grantLoop is the firewall goroutine: it hands the openings of the queue
// to the firewall one by one, until ctx is done. Each firewall operation
// has its deadline (nft.WithTimeout). It returns an error, which stops the
// daemon, when the firewall is lost for good (its netlink socket could not
// be reopened): a daemon that can open nothing must exit, so that systemd
// restarts it.
func (d *daemon) grantLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case g := <-d.grants:
			if err := d.allow(g); err != nil {
				return err
			}
		}
	}
}

// allow asks the firewall for one opening and logs the outcome. It
// returns an error only when the firewall is lost for good.
func (d *daemon) allow(g grant) error {
	ev, src := g.ev, g.ev.Src.String()
	// Recorded before it opens: a crash between the two refuses the
	// sequence after the restart rather than opening it twice. Here, on
	// the firewall goroutine, the write is off the packet path.
	if err := d.state.add(&ev); err != nil {
		d.log.Error().Err(err).Str("event", "state_unwritable").
			Str("risk", "a restart may open this sequence again").Msg("replay record not persisted")
	}
	if err := d.fw.Allow(ev.Src, g.svc, g.ttl); err != nil {
		d.openErrors.Add(1)
		d.log.Error().Err(err).Str("event", "open_failed").Str("user", ev.User).Str("service", ev.Service).
			Str("src", src).Msg("opening failed")
		if errors.Is(err, nft.ErrClosed) {
			return fmt.Errorf("firewall lost, stopping so that systemd restarts the daemon: %w", err)
		}
		return nil
	}
	d.mu.Lock()
	d.openings[ev.Service]++
	d.mu.Unlock()
	// How long after the kernel received the last knock the grant was in
	// place: the daemon's share of the client's wait.
	delay := d.deps.now().Sub(ev.Time)
	d.opens.user(d.log, ev.User).Info().Str("event", "open").Str("user", ev.User).Str("service", ev.Service).Str("src", src).
		Int("offset", ev.Offset).Str("open_for", g.ttl.String()).
		Float64("delay_ms", float64(delay.Microseconds())/1000).Msg("access opened")
	return nil
}

// generation is what one (re)load of the configuration file and the users
// directory gives. A reload builds and checks the whole of it before any
// part is put in use.
type generation struct {
	cfg     *config.Config
	users   []*totpseq.Enrollment
	fw      *nft.Config      // nil: the firewall stays as it is
	tracker *listener.Staged // the tracker's state for cfg and users
	mem     Memory           // the memory estimate of cfg and users
}

// goLimit is the Go runtime's soft memory limit for g.
func (g *generation) goLimit() int64 { return g.mem.goLimit(g.mem.Limit(g.cfg)) }

// reload re-reads the configuration file and the users directory and
// applies them, keeping in-progress knocks, live grants and the replay
// record. It is called from one goroutine only (the reload loop of
// runDaemon), the owner of every change to the daemon's configuration.
//
// What it cannot use, it leaves out and reports (log, state file,
// systemd's status) as a failed reload:
//   - a users file that is bad (mode, realm, unknown service, ...): its
//     user is left out, the others are loaded;
//   - a configuration file with errors: the users directory is loaded
//     under the configuration in force;
//   - a tracker or firewall that refuses the result: nothing changes,
//     except that users whose files are gone or bad are removed all the
//     same (revocations always apply).
//
// An unreadable users directory changes nothing (no user is known). It
// returns an error, which stops the daemon, only when a revocation cannot
// be applied, or the firewall is lost for good: a daemon must never keep
// admitting a revoked user.
func (d *daemon) reload() error {
	d.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec())
	st, err := d.reloadOnce()
	if err != nil {
		d.finish("reload", &State{Applied: "nothing", Users: len(*d.users.Load()), Errors: Problems(err)})
		return err
	}
	if st.OK {
		d.reloadsOK.Add(1)
	} else {
		d.reloadsFailed.Add(1)
	}
	d.finish("reload", st)
	return nil
}

// reloadOnce does the work of reload and says what it applied.
func (d *daemon) reloadOnce() (*State, error) {
	old := d.cfg.Load()
	goLimit := d.goLimit // in force: prepare may raise it
	c, cfgErr := config.Load(old.Path)
	if cfgErr != nil {
		c = old
	}
	users, bad := config.LoadUsers(c)
	if errors.Is(bad, config.ErrUsersDir) {
		d.log.Error().Err(errors.Join(cfgErr, bad)).Str("event", "reload_failed").Str("applied", "nothing").
			Msg("reload failed; running on the configuration loaded before")
		return &State{Applied: "nothing", Users: len(*d.users.Load()), Errors: Problems(cfgErr, bad)}, nil
	}
	d.logRejectedUsers(bad)
	next, err := d.prepare(old, c, cfgErr == nil, users)
	if err == nil {
		// The one step that changes the kernel. The update is atomic: on
		// error the old rules stay. It refuses a change of mode or table.
		err = d.fw.Apply(*next.fw)
		if errors.Is(err, nft.ErrClosed) {
			return nil, fmt.Errorf("firewall lost, stopping so that systemd restarts the daemon: %w", err)
		}
	}
	applied := "the configuration and the users directory"
	if cfgErr != nil {
		applied = "the users directory, under the configuration loaded before (the file has errors)"
	}
	if err != nil {
		next, applied, err = d.revocations(users, err)
		if next == nil {
			d.setGoLimit(goLimit)
			d.log.Error().Err(errors.Join(cfgErr, bad, err)).Str("event", "reload_failed").Str("applied", "nothing").
				Msg("reload failed; running on the configuration loaded before")
			return &State{Applied: "nothing", Users: len(*d.users.Load()), Errors: Problems(cfgErr, bad, err)}, nil
		}
	}
	if bad != nil {
		applied += ", without the rejected users files"
	}
	d.commit(next)
	problems := errors.Join(cfgErr, bad, err)
	if problems != nil {
		d.log.Error().Err(problems).Str("event", "reload_failed").Str("applied", applied).Int("users", len(next.users)).
			Msg("reload failed in part: what could be used is in force")
	} else {
		d.log.Info().Str("event", "reload").Int("users", len(next.users)).Strs("services", next.cfg.ServiceNames()).
			Str("memory_limit", config.FormatSize(next.mem.Limit(next.cfg))).Str("memory_estimate", aboutSize(next.mem.Total())).
			Msg("configuration reloaded")
	}
	return &State{OK: problems == nil, Applied: applied, Users: len(next.users), Errors: Problems(problems)}, nil
}

// revocations is the fallback of a reload that could not be applied
// (cause): the users in force whose files are no longer among the good
// ones (users) are removed, the rest stays as it was. It returns nil when
// nobody is removed, and an error that stops the daemon when the tracker
// refuses even that.
func (d *daemon) revocations(users []*totpseq.Enrollment, cause error) (*generation, string, error) {
	cur := *d.users.Load()
	keep := slices.DeleteFunc(slices.Clone(cur), func(u *totpseq.Enrollment) bool {
		return !slices.ContainsFunc(users, func(n *totpseq.Enrollment) bool { return reflect.DeepEqual(u, n) })
	})
	if len(keep) == len(cur) {
		return nil, "", cause
	}
	c := d.cfg.Load()
	st, err := d.tr.Prepare(d.trackerConfig(c), trackerUsers(keep), d.deps.now())
	if err != nil {
		return nil, "", fmt.Errorf("%w; and the revocation of %d users could not be applied either, "+
			"stopping so that none of them is admitted: %w", cause, len(cur)-len(keep), err)
	}
	applied := fmt.Sprintf("only the revocations (%d users removed; nothing else changed)", len(cur)-len(keep))
	// Fewer users than in force: within the limit that admitted those.
	return &generation{cfg: c, users: keep, tracker: st, mem: EstimateMemory(c, keep)}, applied, cause
}

// logRejectedUsers logs each users file that was left out.
func (d *daemon) logRejectedUsers(bad error) {
	for _, e := range Problems(bad) {
		d.log.Error().Str("event", "user_rejected").Str("error", e).
			Msg("users file rejected: that user cannot knock until it is fixed; the others are loaded")
	}
}

// finish records the outcome of the start or a reload: the state file and
// systemd's status.
func (d *daemon) finish(event string, st *State) {
	if event == "reload" {
		d.seq++
	}
	c := d.cfg.Load()
	st.PID, st.Instance, st.Config, st.Seq, st.Event, st.Time = os.Getpid(), Instance(c), c.Path, d.seq, event, d.deps.now()
	if d.deps.stateDir != "" {
		if err := writeState(d.deps.stateDir, c, st); err != nil {
			d.log.Warn().Err(err).Msg("state file not written: tknockd status and check-config cannot show this (re)load's result")
		}
	}
	status := event + " ok"
	switch {
	case !st.OK && event == "reload":
		status = "reload failed: " + strings.Join(st.Errors, "; ")
	case !st.OK:
		status = "started with errors: " + strings.Join(st.Errors, "; ")
	}
	d.notify("READY=1\nSTATUS=" + strings.ReplaceAll(status, "\n", " "))
}

func (d *daemon) notify(state string) {
	if d.deps.notify == nil {
		return
	}
	if err := d.deps.notify(state); err != nil {
		d.log.Warn().Err(err).Msg("could not tell systemd (NOTIFY_SOCKET)")
	}
}

// prepare checks the next generation, the tracker's state included: c
// (which is old when its file has errors, fresh is false then) and users.
// Nothing in use changes.
func (d *daemon) prepare(old, c *config.Config, fresh bool, users []*totpseq.Enrollment) (*generation, error) {
	if fresh {
		d.restartOnly(old, c)
		c.StateCapacity = old.StateCapacity // the tracker's table is sized once
	}
	mem, err := CheckMemory(c, users)
	if err != nil {
		return nil, err
	}
	// The new state is built beside the one in force, which the estimate
	// counts (Memory.Reload): a higher limit applies from now on (a
	// reload that fails puts the old one back: reloadOnce), a lower one
	// once the old state is dropped (commit).
	g := &generation{cfg: c, users: users, mem: mem}
	if l := g.goLimit(); l > d.goLimit {
		d.setGoLimit(l)
	}
	st, err := d.tr.Prepare(d.trackerConfig(c), trackerUsers(users), d.deps.now())
	if err != nil {
		return nil, err
	}
	fw := c.NFT(users)
	g.fw, g.tracker = &fw, st
	return g, nil
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
	d.setGoLimit(g.goLimit())
	d.lastReload.Store(d.deps.now().Unix())
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
