package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/promtest"
	"github.com/tknock/tknock/totpseq"
)

// realm of every test enrollment and configuration.
const realm = "e2e.tknock.test"

// config is what a test varies in the daemon's configuration file. The
// zero value of a field takes the default filled in by withDefaults.
type config struct {
	Skew       int
	OpenFor    time.Duration
	GapMax     time.Duration
	SeqTimeout time.Duration
	Services   map[string][]string // name -> ["tcp/2222"]
	DropKnocks *bool               // nil: the daemon's default
	Metrics    bool                // serve metrics on metricsAddr in the server namespace
	Extra      string              // raw TOML appended at the end (bad-configuration tests)

	// MetricsWindow is metrics.window (0: the daemon's default);
	// MetricsDebug adds the per-knock counters.
	MetricsWindow time.Duration
	MetricsDebug  bool
	Prefilter     string // "": the daemon's default ("auto": loaded, as root)
	StateDir      string // state_dir; "": the replay record in memory only
}

func (c config) withDefaults() config {
	if c.Skew == 0 {
		c.Skew = 1
	}
	if c.OpenFor == 0 {
		c.OpenFor = 30 * time.Second
	}
	if c.GapMax == 0 {
		c.GapMax = 3 * time.Second
	}
	if c.SeqTimeout == 0 {
		c.SeqTimeout = 10 * time.Second
	}
	if c.Services == nil {
		c.Services = map[string][]string{"ssh": {"tcp/" + fmt.Sprint(sshPort)}}
	}
	return c
}

// metricsAddr is where the daemon serves metrics, inside the server
// namespace, when the test asks for them.
const metricsAddr = "127.0.0.1:9121"

// Ports of the protected services and the knock range of the tests. The
// range is small so that a UDP scan covers it quickly; it still has far
// more than the 64 usable ports the protocol asks for.
const (
	sshPort uint16 = 2222
	webPort uint16 = 8080
	knockLo uint16 = 40000
	knockHi uint16 = 40999
	// knockLen is the tests' sequence length: over 1 000 ports, 7 knocks
	// give 50.3 bits, above totpseq.MinBits (the default 5 gives 35.3).
	knockLen = 7
)

// toml renders the configuration file for a users directory. The keys are
// those of deploy/tknockd.toml.
func (c config) toml(usersDir string) string {
	c = c.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "realm = %q\n", realm)
	fmt.Fprintf(&b, "users_dir = %q\n", usersDir)
	fmt.Fprintf(&b, "interfaces = [\"any\"]\n")
	fmt.Fprintf(&b, "skew = %d\n", c.Skew)
	fmt.Fprintf(&b, "open_for = %q\n", c.OpenFor)
	fmt.Fprintf(&b, "gap_max = %q\n", c.GapMax)
	fmt.Fprintf(&b, "seq_timeout = %q\n", c.SeqTimeout)
	if c.Prefilter != "" {
		fmt.Fprintf(&b, "prefilter = %q\n", c.Prefilter)
	}
	if c.StateDir != "" {
		fmt.Fprintf(&b, "state_dir = %q\n", c.StateDir)
	}
	fmt.Fprintf(&b, "\n[enroll]\nrange = \"%d-%d\"\nlength = %d\n", knockLo, knockHi, knockLen)
	fmt.Fprintf(&b, "\n[services]\n")
	names := make([]string, 0, len(c.Services))
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s = [", name)
		for i, ep := range c.Services[name] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", ep)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "\n[firewall]\nmode = \"table\"\n")
	if c.DropKnocks != nil {
		fmt.Fprintf(&b, "drop_knocks = %v\n", *c.DropKnocks)
	}
	if c.Metrics {
		fmt.Fprintf(&b, "\n[metrics]\nlisten = %q\n", metricsAddr)
		if c.MetricsWindow > 0 {
			fmt.Fprintf(&b, "window = %q\n", c.MetricsWindow)
		}
		if c.MetricsDebug {
			b.WriteString("debug = true\n")
		}
	}
	fmt.Fprintf(&b, "\n[log]\nlevel = \"debug\"\nformat = \"json\"\n")
	b.WriteString(c.Extra)
	return b.String()
}

// writeConfig writes the configuration file (and creates the users
// directory beside it) and returns the file's path.
func (e *env) writeConfig(c config) string {
	e.t.Helper()
	return e.writeFile("etc/tknockd.toml", c.toml(filepath.Join(e.dir, "etc", "users")), 0o600)
}

// user is one enrolled user: the daemon's copy of the enrollment in the
// users directory, and the client's copy.
type user struct {
	enr        *totpseq.Enrollment
	serverFile string
	clientFile string
}

// params are the enrollment parameters of a test user.
type params struct {
	Proto    inet.Proto
	Period   int // seconds; 0: 30
	Services []string
}

// enroll makes a user with a fresh secret, writes the enrollment into the
// users directory (mode 0600, as tknockd enroll does) and gives the client
// its own copy whose host is the server's address of the test's family.
func (e *env) enroll(name string, p params) *user {
	e.t.Helper()
	pp := totpseq.Defaults()
	pp.Realm = realm
	pp.Proto = p.Proto
	pp.Range = totpseq.Range{Lo: knockLo, Hi: knockHi}
	pp.Length = knockLen
	if p.Period != 0 {
		pp.Period = p.Period
	}
	if len(p.Services) > 0 {
		pp.Services = p.Services
	}
	enr, err := totpseq.NewEnrollment(name, e.serverAddr.String(), pp, nil)
	if err != nil {
		e.t.Fatalf("enroll %s: %v", name, err)
	}
	u := &user{
		enr:        enr,
		serverFile: filepath.Join(e.dir, "etc", "users", name+".uri"),
		clientFile: filepath.Join(e.dir, "client", name+".uri"),
	}
	for _, f := range []string{u.serverFile, u.clientFile} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			e.t.Fatal(err)
		}
		if err := enrollfile.Write(f, enr); err != nil {
			e.t.Fatalf("enroll %s: %v", name, err)
		}
	}
	*e.secrets = append(*e.secrets, uriSecret(enr.URI()))
	return u
}

// enrollByDaemon enrolls a user the way an administrator does, with
// `tknockd enroll NAME [extra...]`, which writes the users directory; the
// client gets a copy of the file. With --device DEVICE in extra, the user
// is NAME@DEVICE.
func (e *env) enrollByDaemon(configPath, name string, extra ...string) *user {
	e.t.Helper()
	out, errOut, code := e.tknockd(append([]string{"enroll", name, "--config", configPath, "--host", e.serverAddr.String(), "--no-qr"}, extra...)...)
	if i := slices.Index(extra, "--device"); i >= 0 && i+1 < len(extra) {
		name += "@" + extra[i+1]
	}
	if code != 0 {
		e.t.Fatalf("tknockd enroll %s: exit %d\nstdout: %s\nstderr: %s", name, code, out, errOut)
	}
	u := &user{
		serverFile: filepath.Join(e.dir, "etc", "users", name+".uri"),
		clientFile: filepath.Join(e.dir, "client", name+".uri"),
	}
	enr, err := enrollfile.Read(u.serverFile)
	if err != nil {
		e.t.Fatalf("tknockd enroll %s: %v", name, err)
	}
	if !strings.Contains(out, enr.URI()) {
		e.t.Errorf("tknockd enroll %s: the output does not show the enrollment URI:\n%s", name, out)
	}
	if err := os.MkdirAll(filepath.Dir(u.clientFile), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := enrollfile.Write(u.clientFile, enr); err != nil {
		e.t.Fatal(err)
	}
	u.enr = enr
	*e.secrets = append(*e.secrets, uriSecret(enr.URI()))
	return u
}

// logLine is one line of the daemon's log: its JSON fields, or only the
// raw text when it is not JSON.
type logLine struct {
	raw    string
	fields map[string]any
}

// str returns field k as text ("" when absent).
func (l logLine) str(k string) string {
	v, ok := l.fields[k]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// event is the line's event field: "open", "reject", ...
func (l logLine) event() string { return l.str("event") }

// isReady reports the line that the daemon logs once its capture and its
// firewall are set up.
func (l logLine) isReady() bool {
	return l.str("message") == "ready" || l.event() == "ready"
}

// daemon is a running tknockd inside the server namespace.
type daemon struct {
	e      *env
	cmd    *exec.Cmd
	config string

	mu     sync.Mutex    // guards lines and notify
	lines  []logLine     // every line of stderr so far
	notify chan struct{} // closed and replaced when a line arrives

	done    chan struct{} // closed when the process has exited
	waitErr error         // the exit status; valid once done is closed
}

// startDaemon starts `tknockd run --config FILE` in the server namespace
// and waits for its "ready" line. It is stopped (SIGTERM) at cleanup.
func (e *env) startDaemon(configPath string) *daemon {
	e.t.Helper()
	d := e.spawnDaemon(configPath)
	if _, err := d.waitFor(10*time.Second, "the ready line", logLine.isReady); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// spawnDaemon starts the daemon without waiting for it to be ready.
func (e *env) spawnDaemon(configPath string, args ...string) *daemon {
	t := e.t
	t.Helper()
	d := &daemon{e: e, config: configPath, notify: make(chan struct{}), done: make(chan struct{})}
	d.cmd = e.serverTknockd(context.Background(), append([]string{"run", "--config", configPath}, args...)...)
	d.cmd.Env = append(append(d.cmd.Environ(), e.runtimeDir()), e.daemonEnv...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start tknockd: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.add(sc.Text())
		}
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("tknockd log (pid %d, config %s):\n%s", d.cmd.Process.Pid, configPath, d.text())
		}
		d.checkLog()
	})
	return d
}

func (d *daemon) add(raw string) {
	l := logLine{raw: raw}
	if err := json.Unmarshal([]byte(raw), &l.fields); err != nil {
		l.fields = nil
	}
	d.mu.Lock()
	d.lines = append(d.lines, l)
	close(d.notify)
	d.notify = make(chan struct{})
	d.mu.Unlock()
}

// text returns the whole log so far.
func (d *daemon) text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, l := range d.lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// mark returns a position in the log; since and waitFrom look at lines
// after it.
func (d *daemon) mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// since returns the lines after mark m that match.
func (d *daemon) since(m int, match func(logLine) bool) []logLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []logLine
	for _, l := range d.lines[m:] {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor waits for a line of the whole log that matches.
func (d *daemon) waitFor(timeout time.Duration, what string, match func(logLine) bool) (logLine, error) {
	return d.waitFrom(0, timeout, what, match)
}

// waitFrom waits up to timeout for a line after mark m that matches. It
// returns an error naming what when the line does not come or the daemon
// exits first.
func (d *daemon) waitFrom(m int, timeout time.Duration, what string, match func(logLine) bool) (logLine, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := m; ; {
		d.mu.Lock()
		for ; i < len(d.lines); i++ {
			if match(d.lines[i]) {
				l := d.lines[i]
				d.mu.Unlock()
				return l, nil
			}
		}
		notify := d.notify
		d.mu.Unlock()
		select {
		case <-notify:
		case <-d.done:
			// Lines may still have arrived before the exit: look once more.
			if ls := d.since(i, match); len(ls) > 0 {
				return ls[0], nil
			}
			return logLine{}, fmt.Errorf("tknockd exited (%v) before logging %s", d.waitErr, what)
		case <-deadline.C:
			return logLine{}, fmt.Errorf("tknockd logged no %s within %v", what, timeout)
		}
	}
}

// signal sends sig to the daemon.
func (d *daemon) signal(sig syscall.Signal) {
	d.e.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.e.t.Fatalf("signal %v to tknockd: %v", sig, err)
	}
}

// alive reports whether the process is still running.
func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill9 kills the daemon with SIGKILL and waits for it to be gone.
func (d *daemon) kill9() {
	d.e.t.Helper()
	d.signal(syscall.SIGKILL)
	<-d.done
}

// stop ends the daemon with SIGTERM (SIGKILL after 5 s) and waits for it.
// A daemon that does not exit 0 on SIGTERM is a test failure.
func (d *daemon) stop() {
	if !d.alive() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.waitErr != nil {
			d.e.t.Errorf("tknockd after SIGTERM: %v; want exit status 0", d.waitErr)
		}
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.e.t.Errorf("tknockd did not exit within 5 s of SIGTERM")
	}
}

// checkLog checks properties every daemon log must have: no secret in any
// line, and every reject line carries the source address and a reason
// (fail2ban acts on them).
func (d *daemon) checkLog() {
	t := d.e.t
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lines {
		for _, secret := range *d.e.secrets {
			if secret != "" && strings.Contains(l.raw, secret) {
				t.Errorf("tknockd logged a secret: %s", l.raw)
			}
		}
		if l.event() == "reject" && (l.str("src") == "" || l.str("reason") == "") {
			t.Errorf("reject line without src or reason: %s", l.raw)
		}
	}
}

// uriSecret returns the base32 secret of an enrollment URI.
func uriSecret(uri string) string {
	_, rest, ok := strings.Cut(uri, "secret=")
	if !ok {
		return ""
	}
	secret, _, _ := strings.Cut(rest, "&")
	return secret
}

// isOpen matches the daemon's line for an opening for user and service.
func isOpen(user, service string) func(logLine) bool {
	return func(l logLine) bool {
		return l.event() == "open" && l.str("user") == user && l.str("service") == service
	}
}

// isEvent matches every line of an event ("open", "reject").
func isEvent(ev string) func(logLine) bool {
	return func(l logLine) bool { return l.event() == ev }
}

// isReject matches a reject line with the given reason.
func isReject(reason string) func(logLine) bool {
	return func(l logLine) bool { return l.event() == "reject" && l.str("reason") == reason }
}

// serverTknockd returns a command that runs tknockd with args in the
// server namespace, under e.sandbox when the test set one.
func (e *env) serverTknockd(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(slices.Clone(e.sandbox), tknockdBin(e.t))
	argv = append(argv, args...)
	cmd := e.server.Command(ctx, argv[0], argv[1:]...)
	cmd.ExtraFiles = e.sandboxFiles
	return cmd
}

// runtimeDir is the environment variable that puts the daemon's state
// file into the test's scratch directory rather than /run/tknockd, as
// systemd's RuntimeDirectory= does.
func (e *env) runtimeDir() string {
	return "RUNTIME_DIRECTORY=" + filepath.Join(e.dir, "run")
}

// tknockd runs a tknockd command other than run (check-config, status,
// enroll...) inside the server namespace and returns its output and exit
// code.
func (e *env) tknockd(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	tknockdBin(e.t) // built before the time limit starts
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := e.serverTknockd(ctx, args...)
	cmd.Env = append(cmd.Environ(), e.runtimeDir())
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.t.Fatalf("tknockd %s: still running after 15 s; want it to finish\nstdout: %s\nstderr: %s", strings.Join(args, " "), &o, &se)
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		e.t.Fatalf("tknockd %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), se.String(), code
}

// metrics scrapes the daemon's metrics endpoint (from inside the server
// namespace) and returns every sample by its name with labels, as in
// `tknock_sequences_rejected_total{reason="replay"}`.
func (d *daemon) metrics() map[string]float64 {
	t := d.e.t
	t.Helper()
	var body []byte
	err := d.e.server.Do(func() error {
		c, err := net.DialTimeout("tcp", metricsAddr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: tknockd\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	m, err := promtest.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metrics: %v\n%s", err, body)
	}
	return m
}
