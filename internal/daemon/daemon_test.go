package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/capture/capturetest"
	"github.com/tknock/tknock/listener/listenertest"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
)

// fakeFirewall records what the daemon asks of nftables as text lines.
type fakeFirewall struct {
	mu        sync.Mutex // guards the fields below
	lines     []string
	failAllow error
	failApply error
	notify    chan struct{}   // closed and replaced at each line
	hold      chan netip.Addr // not nil: Allow sends its source there, then waits for release to close
	release   chan struct{}
}

func newFakeFirewall() *fakeFirewall { return &fakeFirewall{notify: make(chan struct{})} }

func (f *fakeFirewall) add(format string, args ...any) {
	f.lines = append(f.lines, fmt.Sprintf(format, args...))
	close(f.notify)
	f.notify = make(chan struct{})
}

func (f *fakeFirewall) open(cfg nft.Config, _ zerolog.Logger) (firewall, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.add("open %s", describeNft(cfg))
	return f, nil
}

func describeNft(cfg nft.Config) string {
	var eps, knocks []string
	for _, e := range cfg.Protected {
		eps = append(eps, e.String())
	}
	for _, k := range cfg.Knocks {
		knocks = append(knocks, k.String())
	}
	return fmt.Sprintf("protected=%s knocks=%s", strings.Join(eps, ","), strings.Join(knocks, ","))
}

func (f *fakeFirewall) Apply(cfg nft.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failApply != nil {
		return f.failApply
	}
	f.add("apply %s", describeNft(cfg))
	return nil
}

func (f *fakeFirewall) Watch(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (f *fakeFirewall) Allow(src netip.Addr, svc nft.Service, ttl time.Duration) error {
	f.mu.Lock()
	hold, release := f.hold, f.release
	f.mu.Unlock()
	if hold != nil { // a slow nftables commit
		hold <- src
		<-release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAllow != nil {
		return f.failAllow
	}
	var eps []string
	for _, e := range svc.Endpoints {
		eps = append(eps, e.String())
	}
	f.add("allow %v %s %s %v", src, svc.Name, strings.Join(eps, ","), ttl)
	return nil
}

func (f *fakeFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.add("close")
	return nil
}

// matching returns the recorded lines that start with prefix.
func (f *fakeFirewall) matching(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func (f *fakeFirewall) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lines)
}

// logLines parses the daemon's JSON log.
func logLines(t testing.TB, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(buf.String()) {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// harness runs runDaemon with a fake capture, a fake firewall and an
// in-memory metrics listener. Tests that use it run inside a synctest
// bubble: its waits (the polls of waitLogFrom and waitMetric,
// awayFromBoundary) pass on synctest's clock, at once and the same way on
// every run.
type harness struct {
	t    *testing.T
	cfg  *config.Config
	net  *capturetest.Net
	fw   *fakeFirewall
	log  *syncBuffer
	hup  chan os.Signal
	cap  *capturetest.Fake // the capture on all interfaces
	done chan error        // runDaemon's result
	stop context.CancelFunc
	http *http.Client // to the metrics endpoint
}

// server is the address knocks go to.
var server = netip.MustParseAddr("192.0.2.1")

func startHarness(t *testing.T, extra string, users ...*totpseq.Enrollment) *harness {
	t.Helper()
	return startHarnessDeps(t, extra, nil, users...)
}

// startHarnessDeps is startHarness with the fakes' deps changed by mod.
func startHarnessDeps(t *testing.T, extra string, mod func(*deps), users ...*totpseq.Enrollment) *harness {
	t.Helper()
	h := &harness{t: t, net: capturetest.NewNet(), fw: newFakeFirewall(), log: &syncBuffer{}, hup: make(chan os.Signal, 1), done: make(chan error, 1)}
	h.cfg = configtest.New(t, extra+"\n[metrics]\nlisten = \"127.0.0.1:9121\"")
	for _, u := range users {
		u.Realm = h.cfg.Realm
		configtest.WriteUser(t, h.cfg, u)
	}
	loaded, err := config.LoadUsers(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	dp := h.deps()
	if mod != nil {
		mod(&dp)
	}
	dp.listen = func(network, addr string) (net.Listener, error) {
		if addr != "127.0.0.1:9121" {
			return nil, fmt.Errorf("metrics on %s, want the configured 127.0.0.1:9121", addr)
		}
		return ln, nil
	}
	tr := &http.Transport{DialContext: ln.dial}
	h.http = &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	log := zerolog.New(h.log).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	go func() { h.done <- runDaemon(ctx, h.cfg, loaded, nil, dp, log) }()
	h.waitLog("the ready line", func(l map[string]any) bool { return l["message"] == "ready" })
	h.cap = h.net.WaitOpen(t)
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		h.stop()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("runDaemon: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("runDaemon did not return within 10s of the end of its context")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s\nfirewall:\n%s", h.log.String(), strings.Join(h.fw.all(), "\n"))
		}
		h.checkLog()
	})
	return h
}

func (h *harness) deps() deps {
	return deps{
		openCapture:     h.net.OpenWith,
		openFirewall:    h.fw.open,
		checkInterfaces: func(*config.Config) error { return nil },
		now:             time.Now, // synctest's clock
		hup:             h.hup,
	}
}

// waitLog waits for a log line that matches and returns it.
func (h *harness) waitLog(what string, match func(map[string]any) bool) map[string]any {
	h.t.Helper()
	return h.waitLogFrom(0, what, match)
}

func (h *harness) mark() int { return len(logLines(h.t, h.log)) }

func (h *harness) waitLogFrom(mark int, what string, match func(map[string]any) bool) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := logLines(h.t, h.log)
		for _, l := range lines[min(mark, len(lines)):] {
			if match(l) {
				return l
			}
		}
		select {
		case err := <-h.done:
			h.t.Fatalf("runDaemon returned (%v) before logging %s:\n%s", err, what, h.log.String())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no %s logged within 10s:\n%s", what, h.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) linesFrom(mark int, match func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	lines := logLines(h.t, h.log)
	for _, l := range lines[min(mark, len(lines)):] {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// checkLog checks what every log must satisfy: no secret, and src and
// reason on every reject line.
func (h *harness) checkLog() {
	text := h.log.String()
	entries, _ := os.ReadDir(h.cfg.UsersDir)
	for _, ent := range entries {
		b, _ := os.ReadFile(filepath.Join(h.cfg.UsersDir, ent.Name()))
		if secret := uriSecret(string(b)); secret != "" && strings.Contains(text, secret) {
			h.t.Errorf("the log shows the secret of %s", ent.Name())
		}
	}
	for _, l := range logLines(h.t, h.log) {
		if l["event"] == "reject" && (l["src"] == nil || l["src"] == "" || l["reason"] == nil || l["reason"] == "") {
			h.t.Errorf("reject line without src or reason: %v", l)
		}
	}
}

func uriSecret(uri string) string {
	_, rest, ok := strings.Cut(uri, "secret=")
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "&")
	return s
}

// knock sends u's sequence for service and the window at offset windows
// from now, from src, through the fake capture, as Ethernet frames
// stamped now.
func (h *harness) knock(u *totpseq.Enrollment, service string, offset int, src netip.Addr) {
	h.t.Helper()
	h.knockPorts(u, src, h.sequence(u, service, offset, src))
}

func (h *harness) sequence(u *totpseq.Enrollment, service string, offset int, src netip.Addr) []uint16 {
	h.t.Helper()
	w := totpseq.Window(time.Now(), u.Period) + uint64(int64(offset))
	seq, err := totpseq.Sequence(&u.Params, service, w, src)
	if err != nil {
		h.t.Fatal(err)
	}
	return seq
}

func (h *harness) knockPorts(u *totpseq.Enrollment, src netip.Addr, ports []uint16) {
	h.t.Helper()
	for _, p := range ports {
		h.cap.Frames <- knockFrame(h.t, src, u.Proto, p, time.Now())
	}
}

// knockFrame builds an Ethernet frame of a knock: a TCP SYN or a UDP
// datagram from src to the server's port.
func knockFrame(t testing.TB, src netip.Addr, proto inet.Proto, port uint16, at time.Time) listener.Frame {
	t.Helper()
	dst := server
	if !src.Is4() {
		dst = netip.MustParseAddr("2001:db8::1")
	}
	f := listenertest.Packet{Src: src.String(), Dst: dst.String(), Proto: proto, SYN: proto == inet.TCP, DstPort: port}.Frame(t)
	f.Time, f.Ifindex = at, 2
	return f
}

// waitAllow waits for the n-th allow line of the fake firewall.
func (h *harness) waitAllow(n int) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.fw.mu.Lock()
		notify := h.fw.notify
		h.fw.mu.Unlock()
		if a := h.fw.matching("allow "); len(a) >= n {
			return a[n-1]
		}
		select {
		case <-notify:
		case <-time.After(time.Until(deadline)):
			h.t.Fatalf("no allow number %d within 10s; firewall: %v", n, h.fw.all())
		}
	}
}

// metrics fetches /metrics.
func (h *harness) metrics() string {
	h.t.Helper()
	resp, err := h.http.Get("http://metrics/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// metricValue returns the value of an unlabelled metric.
func (h *harness) metricValue(name string) int {
	h.t.Helper()
	for line := range strings.Lines(h.metrics()) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				h.t.Fatalf("metric %s: %q", name, line)
			}
			return n
		}
	}
	h.t.Fatalf("no metric %s", name)
	return 0
}

// waitMetric waits until the metrics have the line.
func (h *harness) waitMetric(line string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.metrics(), "\n"+line+"\n") {
		if time.Now().After(deadline) {
			h.t.Fatalf("metrics lack %q after 10s:\n%s", line, h.metrics())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) wantMetrics(lines ...string) {
	h.t.Helper()
	m := h.metrics()
	for _, l := range lines {
		if !strings.Contains(m, "\n"+l+"\n") {
			h.t.Errorf("metrics lack the line %q:\n%s", l, m)
		}
	}
}

// nextWindow sleeps until just after the end of the metrics' current
// window, when the counters of events are published.
func (h *harness) nextWindow() {
	w := h.cfg.Metrics.Window
	now := time.Now()
	time.Sleep(now.Truncate(w).Add(w).Sub(now) + time.Millisecond)
	synctest.Wait()
}

// awayFromBoundary waits until the current window of period seconds has
// at least room left, so a test's knocks fall in one window.
func awayFromBoundary(period int, room time.Duration) {
	testkit.AwayFromBoundary(period, room, 50*time.Millisecond)
}

func event(ev string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["event"] == ev }
}

var (
	client  = netip.MustParseAddr("203.0.113.7")
	client6 = netip.MustParseAddr("2001:db8:77::7")
	other   = netip.MustParseAddr("198.51.100.9")
)

// TestDaemonOpenAndReject: knocks in, grants out, log lines and metrics.
func TestDaemonOpenAndReject(t *testing.T) { synctest.Test(t, testDaemonOpenAndReject) }

func testDaemonOpenAndReject(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh", "web")
	awayFromBoundary(alice.Period, 10*time.Second)
	h := startHarness(t, "", alice)

	if got := h.fw.all(); len(got) != 2 || got[0] != "open protected=tcp/22,tcp/80,tcp/443 knocks=tcp/10000-32767" || got[1] != "apply protected=tcp/22,tcp/80,tcp/443 knocks=tcp/10000-32767" {
		t.Errorf("firewall at start: %q", got)
	}

	// A good knock opens the service for the source.
	m := h.mark()
	h.knock(alice, "ssh", 0, client)
	if got, want := h.waitAllow(1), "allow 203.0.113.7 ssh tcp/22 30s"; got != want {
		t.Errorf("firewall: %q, want %q", got, want)
	}
	open := h.waitLogFrom(m, "an open line", event("open"))
	for k, want := range map[string]any{"level": "info", "user": "alice", "service": "ssh", "src": "203.0.113.7", "offset": 0.0} {
		if open[k] != want {
			t.Errorf("open line: %s = %v, want %v (%v)", k, open[k], want, open)
		}
	}

	// IPv6, the other service.
	h.knock(alice, "web", 0, client6)
	if got, want := h.waitAllow(2), "allow 2001:db8:77::7 web tcp/80,tcp/443 30s"; got != want {
		t.Errorf("firewall: %q, want %q", got, want)
	}

	// The same sequence again, once gap_max has passed (within it, the
	// knocks are taken for the client's later rounds, PROTOCOL.md rule 6):
	// a replay, nothing opens.
	time.Sleep(h.cfg.GapMax + time.Second)
	m = h.mark()
	h.knock(alice, "ssh", 0, client)
	rej := h.waitLogFrom(m, "a replay line", event("reject"))
	for k, want := range map[string]any{"level": "warn", "reason": "replay", "src": "203.0.113.7", "user": "alice", "service": "ssh"} {
		if rej[k] != want {
			t.Errorf("replay line: %s = %v, want %v (%v)", k, rej[k], want, rej)
		}
	}

	// Three windows off: a probable clock skew, with the offset.
	m = h.mark()
	h.knock(alice, "ssh", 3, other)
	rej = h.waitLogFrom(m, "a clock skew line", event("reject"))
	if rej["reason"] != "clock_skew" || rej["offset"] != 3.0 || rej["src"] != "198.51.100.9" {
		t.Errorf("clock skew line: %v", rej)
	}
	m = h.mark()
	h.knock(alice, "ssh", -4, other)
	rej = h.waitLogFrom(m, "a second clock skew line", event("reject"))
	if rej["reason"] != "clock_skew" || rej["offset"] != -4.0 {
		t.Errorf("clock skew line: %v", rej)
	}

	// One window ahead is inside the skew: it opens, at offset 1.
	m = h.mark()
	h.knock(alice, "ssh", 1, other)
	h.waitAllow(3)
	if open := h.waitLogFrom(m, "an open line", event("open")); open["offset"] != 1.0 || open["src"] != "198.51.100.9" {
		t.Errorf("open line: %v", open)
	}

	// A sequence from another source than the one it is bound to opens
	// nothing.
	seq := h.sequence(alice, "ssh", 0, client6)
	h.knockPorts(alice, other, seq)
	synctest.Wait() // the daemon has handled every frame

	if got := len(h.fw.matching("allow ")); got != 3 {
		t.Errorf("%d allows, want 3: %v", got, h.fw.all())
	}
	// The counters of events are published at the end of the window.
	h.wantMetrics(`tknock_openings_total{service="ssh"} 0`, "tknock_users 1", "tknock_metrics_debug 0")
	h.nextWindow()
	h.wantMetrics(
		`tknock_openings_total{service="ssh"} 2`,
		`tknock_openings_total{service="web"} 1`,
		`tknock_sequences_rejected_total{reason="replay"} 1`,
		`tknock_sequences_rejected_total{reason="clock_skew"} 2`,
		`tknock_sequences_rejected_total{reason="expired"} 0`,
		"tknock_users 1",
		"tknock_capture_drops_total 1",
		"tknock_prefilter_active 0",
		"tknock_opening_errors_total 0",
		`tknock_reloads_total{result="ok"} 0`,
		"tknock_metrics_window_seconds 60",
	)
	if got := h.metricValue("tknock_knocks_received_total"); got != 10 {
		t.Errorf("tknock_knocks_received_total %d, want the fake capture's kernel count, 10", got)
	}
	if m := h.metrics(); strings.Contains(m, "tknock_sequences_started_total") || strings.Contains(m, "\ntknock_tracked_sources ") {
		t.Errorf("metrics without metrics.debug show per-knock counters:\n%s", m)
	}
}

// TestDaemonAllowFails: a firewall error is logged, the daemon runs on.
func TestDaemonAllowFails(t *testing.T) { synctest.Test(t, testDaemonAllowFails) }

func testDaemonAllowFails(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice")
	awayFromBoundary(alice.Period, 5*time.Second)
	h := startHarness(t, "", alice)
	h.fw.mu.Lock()
	h.fw.failAllow = errors.New("nft: allow: no buffer space")
	h.fw.mu.Unlock()
	h.knock(alice, "ssh", 0, client)
	l := h.waitLog("an open_failed line", event("open_failed"))
	if l["level"] != "error" || l["src"] != "203.0.113.7" || !strings.Contains(fmt.Sprint(l["error"]), "no buffer space") {
		t.Errorf("open_failed line: %v", l)
	}
	h.nextWindow()
	h.waitMetric("tknock_opening_errors_total 1")
}

// TestDaemonReload: SIGHUP adds a user, keeps a knock in progress, live
// grants and the replay record; a broken reload keeps the daemon on its
// old configuration.
func TestDaemonReload(t *testing.T) { synctest.Test(t, testDaemonReload) }

func testDaemonReload(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	bob := configtest.Enrollment(t, c0, "bob", "web")
	awayFromBoundary(alice.Period, 8*time.Second)
	h := startHarness(t, "", alice)

	h.knock(alice, "ssh", 0, client)
	h.waitAllow(1)

	// alice is half-way through her next sequence (one window ahead, so
	// not a replay) when bob is added and the daemon reloads.
	seq := h.sequence(alice, "ssh", 1, other)
	h.knockPorts(alice, other, seq[:2])
	configtest.WriteUser(t, h.cfg, bob)
	m := h.mark()
	h.hup <- os.Interrupt
	l := h.waitLogFrom(m, "a reload line", event("reload"))
	if l["level"] != "info" || l["users"] != 2.0 || !strings.Contains(fmt.Sprint(l["message"]), "reload") {
		t.Errorf("reload line: %v", l)
	}
	if got := h.fw.matching("apply "); len(got) != 2 || got[1] != "apply protected=tcp/22,tcp/80,tcp/443 knocks=tcp/10000-32767" {
		t.Errorf("firewall applies: %q, want two, at start and at the reload (grants kept: no teardown, no re-creation)", got)
	}
	h.knockPorts(alice, other, seq[2:])
	if got, want := h.waitAllow(2), "allow 198.51.100.9 ssh tcp/22 30s"; got != want {
		t.Errorf("the knock begun before the reload: %q, want %q", got, want)
	}
	h.knock(bob, "web", 0, client)
	if got, want := h.waitAllow(3), "allow 203.0.113.7 web tcp/80,tcp/443 30s"; got != want {
		t.Errorf("bob after the reload: %q, want %q", got, want)
	}
	// The replay record survived the reload.
	m = h.mark()
	h.knock(alice, "ssh", 0, client)
	if l := h.waitLogFrom(m, "a replay line", event("reject")); l["reason"] != "replay" {
		t.Errorf("alice's first sequence again after the reload: %v, want a replay", l)
	}

	// Broken reloads: a bad config file, a bad users file, a firewall that
	// refuses the update. Each is logged as an error, and bob, whose file
	// was removed meanwhile, is revoked all the same: a revocation never
	// waits for a good reload. A good reload then takes him in again.
	good, err := os.ReadFile(h.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		break_, fix func()
		want        string
	}{
		{"config", func() {
			os.WriteFile(h.cfg.Path, []byte(strings.Replace(string(good), "realm", "skew = 9\nrealm", 1)), 0o600)
		}, func() { os.WriteFile(h.cfg.Path, good, 0o600) }, "field skew: 9"},
		{"users", func() {
			os.WriteFile(config.UserFile(h.cfg.UsersDir, "mallory"), []byte("otpauth://totp/tknock:mallory?secret=NOT!&tknock=1\n"), 0o600)
		}, func() { os.Remove(config.UserFile(h.cfg.UsersDir, "mallory")) }, "mallory.uri"},
		{"firewall", func() {
			h.fw.mu.Lock()
			h.fw.failApply = errors.New("nft: apply: the table name changed")
			h.fw.mu.Unlock()
		}, func() {
			h.fw.mu.Lock()
			h.fw.failApply = nil
			h.fw.mu.Unlock()
		}, "table name changed"},
	} {
		srcs := map[string]netip.Addr{"config": client6, "users": netip.MustParseAddr("2001:db8:77::8"), "firewall": netip.MustParseAddr("2001:db8:77::9")}
		tc.break_()
		os.Remove(config.UserFile(h.cfg.UsersDir, "bob"))
		m := h.mark()
		h.hup <- os.Interrupt
		l := h.waitLogFrom(m, "a reload error", event("reload_failed"))
		if l["level"] != "error" || !strings.Contains(fmt.Sprint(l["error"]), tc.want) {
			t.Errorf("broken reload (%s): %v, want an error naming %q", tc.name, l, tc.want)
		}
		m = h.mark()
		h.knock(bob, "web", 1, srcs[tc.name])
		synctest.Wait() // the daemon has handled the knocks
		if got := h.linesFrom(m, event("open")); len(got) != 0 {
			t.Errorf("broken reload (%s): bob, revoked, still opens: %v", tc.name, got)
		}
		tc.fix()
		configtest.WriteUser(t, h.cfg, bob)
		m = h.mark()
		h.hup <- os.Interrupt
		h.waitLogFrom(m, "a reload line", event("reload"))
		n := len(h.fw.matching("allow "))
		h.knock(bob, "web", 1, srcs[tc.name])
		h.waitAllow(n + 1)
	}
	h.wantMetrics(`tknock_reloads_total{result="ok"} 4`, `tknock_reloads_total{result="error"} 3`, "tknock_users 2")

	// A good reload that removes bob and changes open_for and a service.
	os.Remove(config.UserFile(h.cfg.UsersDir, "bob"))
	os.WriteFile(h.cfg.Path, []byte(strings.Replace(string(good), "realm", "open_for = \"5s\"\ninterfaces = [\"eth9\"]\nrealm", 1)), 0o600)
	m = h.mark()
	h.hup <- os.Interrupt
	h.waitLogFrom(m, "a reload line", event("reload"))
	if w := h.linesFrom(m, func(l map[string]any) bool { return l["level"] == "warn" }); len(w) != 1 || !strings.Contains(fmt.Sprint(w[0]["fields"]), "interfaces") {
		t.Errorf("changing interfaces on reload: warnings %v, want one naming interfaces", w)
	}
	m = h.mark()
	h.knock(alice, "ssh", 0, client6)
	if got := h.waitAllow(len(h.fw.matching("allow ")) + 1); got != "allow 2001:db8:77::7 ssh tcp/22 5s" {
		t.Errorf("after a reload with open_for = 5s: %q", got)
	}
	// The grant comes before its log line: wait for the line too, so that
	// it is not taken for bob's below.
	h.waitLogFrom(m, "alice's open line", event("open"))
	m = h.mark()
	h.knock(bob, "web", -1, client)
	synctest.Wait() // the daemon has handled the knocks
	if got := h.linesFrom(m, event("open")); len(got) != 0 {
		t.Errorf("bob, revoked, still opens: %v", got)
	}
}

// TestDaemonReloadAllOrNothing: a reload that the tracker refuses (here:
// a clock it cannot take) leaves the firewall untouched, not updated and
// then restored, and the users in force as they were.
func TestDaemonReloadAllOrNothing(t *testing.T) { synctest.Test(t, testDaemonReloadAllOrNothing) }

func testDaemonReloadAllOrNothing(t *testing.T) {
	c0 := configtest.New(t, "")
	alice := configtest.Enrollment(t, c0, "alice", "ssh")
	bob := configtest.Enrollment(t, c0, "bob", "web")
	awayFromBoundary(alice.Period, 8*time.Second)
	var badClock atomic.Bool
	h := startHarnessDeps(t, "", func(dp *deps) {
		dp.now = func() time.Time {
			if badClock.Load() {
				return time.Unix(-1, 0) // before 1970: the tracker refuses it
			}
			return time.Now()
		}
	}, alice)

	configtest.WriteUser(t, h.cfg, bob)
	before := h.fw.all()
	badClock.Store(true)
	m := h.mark()
	h.hup <- os.Interrupt
	l := h.waitLogFrom(m, "a reload error", event("reload_failed"))
	badClock.Store(false)
	if !strings.Contains(fmt.Sprint(l["error"]), "tracker: time") {
		t.Errorf("reload_failed line: %v, want the tracker's error", l)
	}
	if got := h.fw.all(); !slices.Equal(got, before) {
		t.Errorf("firewall after a reload the tracker refused:\n%s\nwant it untouched:\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	h.wantMetrics(`tknock_reloads_total{result="error"} 1`, "tknock_users 1")
	// bob was not taken in: his knock opens nothing; alice's still does.
	m = h.mark()
	h.knock(bob, "web", 0, other)
	synctest.Wait() // the daemon has handled the knocks
	if got := h.linesFrom(m, event("open")); len(got) != 0 {
		t.Errorf("bob opened after a failed reload: %v", got)
	}
	h.knock(alice, "ssh", 0, client)
	h.waitAllow(1)
}

// TestDaemonStartErrors: every failure before the firewall leaves it
// untouched; the error names the problem.
func TestDaemonStartErrors(t *testing.T) {
	c := configtest.New(t, "interfaces = [\"eth0\", \"eth1\"]\n[metrics]\nlisten = \"127.0.0.1:9121\"")
	alice := configtest.Enrollment(t, c, "alice")
	configtest.WriteUser(t, c, alice)
	users, err := config.LoadUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*deps, *capturetest.Net, *fakeFirewall)
		want   string
		fwUsed bool
	}{
		{"missing interface", func(d *deps, _ *capturetest.Net, _ *fakeFirewall) {
			d.checkInterfaces = (*config.Config).CheckInterfaces
		}, `interface "eth1" does not exist`, false},
		{"capture fails", func(_ *deps, n *capturetest.Net, _ *fakeFirewall) { n.SetMissing("eth1", true) }, "capture on interface eth1", false},
		{"metrics port taken", func(d *deps, _ *capturetest.Net, _ *fakeFirewall) {
			d.listen = func(string, string) (net.Listener, error) { return nil, errors.New("address already in use") }
		}, "metrics: address already in use", false},
		{"firewall fails", func(_ *deps, _ *capturetest.Net, fw *fakeFirewall) {
			fw.failApply = errors.New("nft: permission denied")
		}, "permission denied", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, fw := capturetest.NewNet(), newFakeFirewall()
			d := deps{openCapture: n.OpenWith, openFirewall: fw.open, checkInterfaces: func(*config.Config) error { return nil },
				listen: func(string, string) (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }, now: time.Now, hup: make(chan os.Signal)}
			if tt.name == "missing interface" {
				// eth0 exists nowhere here either; only eth1 is named below.
				c := *c
				c.Interfaces = []string{"lo", "eth1"}
				tt.change(&d, n, fw)
				err := runDaemon(context.Background(), &c, users, nil, d, zerolog.Nop())
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("runDaemon: %v, want an error containing %q", err, tt.want)
				}
			} else {
				tt.change(&d, n, fw)
				err := runDaemon(context.Background(), c, users, nil, d, zerolog.Nop())
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("runDaemon: %v, want an error containing %q", err, tt.want)
				}
			}
			if used := len(fw.all()) > 0; used != tt.fwUsed {
				t.Errorf("firewall calls: %q", fw.all())
			}
			for _, c := range n.Opened {
				if !c.Closed() {
					t.Errorf("capture on %q left open", c.Iface)
				}
			}
		})
	}
}

// TestRejectFloodIsSampled: a flood of rejected sequences (a replay from
// spoofed sources, say) writes a bounded number of lines; the openings of
// different users are never sampled (one user's are: TestOpenLinesSampledPerUser).
func TestRejectFloodIsSampled(t *testing.T) {
	var buf syncBuffer
	log := zerolog.New(&buf)
	d := &daemon{log: log, rejects: log.Sample(newSampler()), fw: newFakeFirewall(), openings: map[string]uint64{}, deps: deps{now: time.Now},
		grants: make(chan grant, 300)}
	c := configtest.New(t, "")
	d.cfg.Store(c)
	d.prev.Store(c)
	const n = 10000
	src := netip.MustParseAddr("192.0.2.7")
	for range n {
		d.emit(listener.Event{Kind: listener.Replay, User: "alice", Service: "ssh", Src: src, Time: time.Now()})
	}
	rejects := strings.Count(buf.String(), `"event":"reject"`)
	if hi := sampleBurst*2 + n/sampleEvery; rejects > hi || rejects < sampleBurst {
		t.Errorf("%d reject lines for %d rejections, want %d..%d", rejects, n, sampleBurst, hi)
	}
	for i := range 300 {
		d.emit(listener.Event{Kind: listener.Opened, User: fmt.Sprint("user", i), Service: "ssh", Src: src, Time: time.Now()})
	}
	for len(d.grants) > 0 {
		if err := d.allow(<-d.grants); err != nil {
			t.Fatal(err)
		}
	}
	if opens := strings.Count(buf.String(), `"event":"open"`); opens != 300 {
		t.Errorf("%d open lines for 300 openings: openings must all be logged", opens)
	}
	if delays := strings.Count(buf.String(), `"delay_ms":`); delays != 300 {
		t.Errorf("%d of 300 open lines give the delay since the last knock", delays)
	}
}
