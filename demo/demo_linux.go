package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tknock/tknock/internal/netns"
)

// The demo's network. The names are fixed so that a newcomer can look
// inside while it runs (`ip netns exec tkdemo-server nft list ruleset`);
// leftovers of an interrupted run are removed first.
const (
	nsServer   = "tkdemo-server"
	nsClient   = "tkdemo-client"
	nsStranger = "tkdemo-stranger"

	serverAddr   = "192.0.2.1"
	clientAddr   = "192.0.2.2"
	strangerAddr = "198.51.100.2"
	servicePort  = 2222
)

// demo is one run: what it created, so that cleanup removes exactly that.
type demo struct {
	o       *out
	bin     string // directory of tknockd and tknock
	openFor time.Duration
	dir     string // configuration, users, the client's files

	server, client, stranger *netns.NS
	namespaces               []string // created, to delete
	listener                 net.Listener
	daemon                   *exec.Cmd
	daemonDone               chan struct{}
	lines                    chan map[string]any // the daemon's log lines, for waitLog
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	binDir := fs.String("bin", "bin", "directory holding tknockd and tknock (make build puts them in bin/)")
	openFor := fs.Duration("open-for", 8*time.Second, "how long a knock opens the door (the daemon's open_for)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces and nftables rules, so it needs root: run it as `sudo make demo`")
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	for _, b := range []string{"tknockd", "tknock"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make build` first (or give --bin DIR)", b, bin)
		}
	}
	d := &demo{o: newOut(stdout), bin: bin, openFor: *openFor}
	defer d.cleanup()
	err = d.run(ctx)
	if ctx.Err() != nil {
		return errors.New("interrupted; removed what the demo had created")
	}
	return err
}

func (d *demo) run(ctx context.Context) error {
	o := d.o
	o.Title("tknock demo: a port that opens only for the right knock")

	o.Step("A small network of three namespaces")
	if err := d.network(); err != nil {
		return err
	}
	o.Say("  client   %-13s ---\\", clientAddr)
	o.Say("                              server %s  (and 198.51.100.1)", serverAddr)
	o.Say("  stranger %-13s ---/", strangerAddr)
	o.Say("The client and the stranger both reach the server at %s.", serverAddr)

	o.Step("A protected service in the server: an echo service on port %d (think: ssh)", servicePort)
	if err := d.service(); err != nil {
		return err
	}
	o.Say("Without a firewall anyone could connect to it. tknockd will hide it.")

	o.Step("Configure tknockd and start it in the server")
	cfg, err := d.configure()
	if err != nil {
		return err
	}
	o.Say("The configuration (%s):", cfg)
	o.Quote(mustRead(cfg))
	if err := d.startDaemon(cfg); err != nil {
		return err
	}
	if _, err := d.waitLog(ctx, 10*time.Second, "ready", func(l map[string]any) bool { return l["message"] == "ready" || l["event"] == "ready" }); err != nil {
		return err
	}
	o.Say("It captures knock packets, and its nftables table now drops new connections to port %d.", servicePort)
	o.Say("(Look inside while the demo runs: ip netns exec %s nft list ruleset)", nsServer)

	o.Step("The client connects to %s:%d before knocking", serverAddr, servicePort)
	if err := d.expectRefused(d.client, "client"); err != nil {
		return err
	}

	o.Step("Enroll a user, alice, and reload the running daemon")
	o.Say("`tknockd enroll alice` makes a secret, writes users/alice.uri and shows what to hand to alice:")
	if err := d.runCmd(ctx, d.server, nil, filepath.Join(d.bin, "tknockd"), "enroll", "alice", "--config", cfg); err != nil {
		return err
	}
	o.Say("$ ip netns exec %s kill -HUP %d     # what systemctl reload tknockd does", nsServer, d.daemon.Process.Pid)
	if err := d.daemon.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload tknockd: %w", err)
	}
	if _, err := d.waitLog(ctx, 10*time.Second, "the reload", func(l map[string]any) bool { return l["event"] == "reload" && l["users"] == float64(1) }); err != nil {
		return err
	}
	o.Say("tknockd re-read its users directory: alice can knock now.")

	o.Step("alice imports her enrollment on the client and knocks")
	o.Say("A knock is 4 TCP SYNs to ports derived from the secret, the current 30 s window and")
	o.Say("the client's own address. Nothing answers them; tknockd sees them on the wire.")
	clientEnv := []string{"TKNOCK_CONFIG_DIR=" + filepath.Join(d.dir, "client-config"), "TKNOCK_CACHE_DIR=" + filepath.Join(d.dir, "client-cache")}
	tknock := filepath.Join(d.bin, "tknock")
	for _, args := range [][]string{
		{"enroll", "--file", filepath.Join(d.dir, "users", "alice.uri")},
		{"knock", "-v", serverAddr, "ssh"},
	} {
		o.Say("$ tknock %s", strings.Join(args, " "))
		if err := d.runCmd(ctx, d.client, clientEnv, tknock, args...); err != nil {
			return err
		}
	}
	open, err := d.waitLog(ctx, 5*time.Second, "an opening", func(l map[string]any) bool { return l["event"] == "open" })
	if err != nil {
		return err
	}
	opened := time.Now()
	o.Say("tknockd matched alice's sequence from %v and opened port %d for that address only, for %v.", open["src"], servicePort, d.openFor)

	o.Step("The client connects again")
	held, err := d.dial(d.client)
	if err != nil {
		return fmt.Errorf("the client could not connect after its knock: %w", err)
	}
	defer held.Close()
	o.Say("Connected, and the echo service answered. The client keeps this connection open.")

	o.Step("The stranger tries the same port")
	if err := d.expectRefused(d.stranger, "stranger"); err != nil {
		return err
	}
	o.Say("The opening is for the client's address only.")

	o.Step("`tknockd status` shows the live grant, read from the kernel")
	if err := d.runCmd(ctx, d.server, nil, filepath.Join(d.bin, "tknockd"), "status", "--config", cfg); err != nil {
		return err
	}

	o.Step("Wait for the grant to expire (%v after the knock)", d.openFor)
	o.Say("The kernel removes the grant by itself: the door closes even if tknockd dies.")
	wait := time.Until(opened.Add(d.openFor + time.Second))
	o.Say("Waiting %v...", wait.Round(time.Second))
	if err := sleep(ctx, wait); err != nil {
		return err
	}
	o.Say("A new connection from the client:")
	if err := d.expectRefused(d.client, "client"); err != nil {
		return err
	}
	if err := echo(held, "still there?"); err != nil {
		return fmt.Errorf("the connection made during the grant died: %w", err)
	}
	o.Say("The connection made while the door was open still works: only new connections need a knock.")

	o.Step("Clean up")
	return nil
}

// network creates the namespaces and links.
func (d *demo) network() error {
	for _, name := range []string{nsServer, nsClient, nsStranger} {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
			d.o.Say("Removing namespace %s, left over from an earlier run.", name)
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				return fmt.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		}
	}
	mk := func(name string) (*netns.NS, error) {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
		}
		d.namespaces = append(d.namespaces, name)
		ns := &netns.NS{Name: name, Path: filepath.Join("/run/netns", name)}
		_, err := ns.Run("ip", "link", "set", "lo", "up")
		return ns, err
	}
	var err error
	if d.server, err = mk(nsServer); err != nil {
		return err
	}
	if d.client, err = mk(nsClient); err != nil {
		return err
	}
	if d.stranger, err = mk(nsStranger); err != nil {
		return err
	}
	links := []struct {
		srvIf          string
		peer           *netns.NS
		srvNet, peerIP string
	}{
		{"to-client", d.client, serverAddr + "/24", clientAddr + "/24"},
		{"to-stranger", d.stranger, "198.51.100.1/24", strangerAddr + "/24"},
	}
	for _, l := range links {
		gw, _, _ := strings.Cut(l.srvNet, "/")
		for _, c := range []struct {
			ns   *netns.NS
			args []string
		}{
			{d.server, []string{"link", "add", l.srvIf, "type", "veth", "peer", "name", "eth0", "netns", l.peer.Name}},
			{d.server, []string{"addr", "add", l.srvNet, "dev", l.srvIf}},
			{d.server, []string{"link", "set", l.srvIf, "up"}},
			{l.peer, []string{"addr", "add", l.peerIP, "dev", "eth0"}},
			{l.peer, []string{"link", "set", "eth0", "up"}},
			{l.peer, []string{"route", "add", "default", "via", gw}},
		} {
			if _, err := c.ns.Run("ip", c.args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// service starts the echo service in the server namespace.
func (d *demo) service() error {
	err := d.server.Do(func() error {
		var err error
		d.listener, err = net.Listen("tcp", fmt.Sprintf(":%d", servicePort))
		return err
	})
	if err != nil {
		return fmt.Errorf("echo service: %w", err)
	}
	go func() {
		for {
			c, err := d.listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return nil
}

// configure writes the daemon's configuration into a fresh directory and
// returns its path.
func (d *demo) configure() (string, error) {
	var err error
	if d.dir, err = os.MkdirTemp("", "tknock-demo-"); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`# The name of this server in every enrollment.
realm = "demo.tknock.test"
# One enrollment file per user.
users_dir = "users"
# Capture knocks on every interface.
interfaces = ["any"]
# How long a knock opens the door for new connections.
open_for = %q
# Time windows accepted on either side of now.
skew = 1

# Parameters of new enrollments: what the client knocks at, with what.
[enroll]
host = %q
services = ["ssh"]
range = "40000-40999"
# Seven knocks over 1 000 ports: 50.3 bits, above the 48 tknockd asks.
length = 7
proto = "tcp"

# What each service opens.
[services]
ssh = ["tcp/%d"]

# tknockd owns the nftables table inet tknock; knock ports look filtered.
[firewall]
mode = "table"
drop_knocks = true

[log]
format = "json"
`, d.openFor.String(), serverAddr, servicePort)
	if err := os.Mkdir(filepath.Join(d.dir, "users"), 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(d.dir, "tknockd.toml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// startDaemon starts tknockd in the server namespace and prints its log
// lines as they come.
func (d *demo) startDaemon(cfg string) error {
	d.daemon = d.server.Command(context.Background(), filepath.Join(d.bin, "tknockd"), "run", "--config", cfg)
	stderr, err := d.daemon.StderrPipe()
	if err != nil {
		return err
	}
	if err := d.daemon.Start(); err != nil {
		return fmt.Errorf("start tknockd: %w", err)
	}
	d.o.Say("$ ip netns exec %s tknockd run --config %s", nsServer, cfg)
	d.lines = make(chan map[string]any, 100)
	d.daemonDone = make(chan struct{})
	go func() {
		defer close(d.daemonDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l map[string]any
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				d.o.Log("tknockd: " + sc.Text())
				continue
			}
			d.o.Log("tknockd: " + logText(l))
			select {
			case d.lines <- l:
			default: // nobody waits for it
			}
		}
		d.daemon.Wait()
	}()
	return nil
}

// logText shows a JSON log line as "message key=value ..." for people.
func logText(l map[string]any) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k != "message" && k != "time" && k != "level" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprint(&b, l["message"])
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, l[k])
	}
	return b.String()
}

// waitLog waits for a daemon log line that matches.
func (d *demo) waitLog(ctx context.Context, timeout time.Duration, what string, match func(map[string]any) bool) (map[string]any, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-d.lines:
			if match(l) {
				return l, nil
			}
		case <-d.daemonDone:
			return nil, fmt.Errorf("tknockd exited before logging %s", what)
		case <-deadline:
			return nil, fmt.Errorf("tknockd logged no %s within %v", what, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// runCmd runs a program inside ns and prints its output as it comes.
func (d *demo) runCmd(ctx context.Context, ns *netns.NS, env []string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &quoteWriter{o: d.o}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.flush()
	if err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

// quoteWriter prints a program's output line by line as it comes.
type quoteWriter struct {
	o   *out
	buf []byte
}

func (w *quoteWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.o.Quote(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *quoteWriter) flush() {
	if len(w.buf) > 0 {
		w.o.Quote(string(w.buf))
		w.buf = nil
	}
}

// dial connects from inside ns to the service and checks an echo.
func (d *demo) dial(ns *netns.NS) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", serverAddr, servicePort), 2*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := echo(c, "hello"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// expectRefused tries to connect from ns and reports the refusal; a
// connection that succeeds is an error.
func (d *demo) expectRefused(ns *netns.NS, who string) error {
	start := time.Now()
	c, err := d.dial(ns)
	if err == nil {
		c.Close()
		return fmt.Errorf("the %s connected, but the door should be closed to it", who)
	}
	d.o.Say("Refused: no answer within %v (%v). The firewall drops the connection attempt.", time.Since(start).Round(100*time.Millisecond), errors.Unwrap(err))
	return nil
}

// echo writes msg on c and expects it back.
func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg+"\n" {
		return fmt.Errorf("echo: got %q, want %q", line, msg)
	}
	return nil
}

// cleanup stops the daemon and removes the namespaces (with their links,
// the nftables table and the service's socket) and the directory.
func (d *demo) cleanup() {
	if d.daemon != nil && d.daemon.Process != nil {
		d.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.daemonDone:
		case <-time.After(5 * time.Second):
			d.daemon.Process.Kill()
			<-d.daemonDone
		}
		d.o.Say("Stopped tknockd.")
	}
	if d.listener != nil {
		d.listener.Close()
	}
	for _, name := range slices.Backward(d.namespaces) {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			d.o.Say("ip netns del %s: %v: %s", name, err, out)
			continue
		}
		d.o.Say("Removed namespace %s.", name)
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
		d.o.Say("Removed %s.", d.dir)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// out prints the narration; the daemon's log lines come from another
// goroutine, so writes are serialized.
type out struct {
	mu    sync.Mutex // guards w and step
	w     io.Writer
	step  int
	color bool
}

func newOut(w io.Writer) *out {
	o := &out{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			o.color = true
		}
	}
	return o
}

func (o *out) style(code, s string) string {
	if !o.color {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

// Title prints the demo's title.
func (o *out) Title(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s\n", o.style("1", s))
}

// Step starts a numbered step.
func (o *out) Step(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.step++
	fmt.Fprintf(o.w, "\n%s\n", o.style("1", fmt.Sprintf("%d. %s", o.step, fmt.Sprintf(format, args...))))
}

// Say prints a line of explanation.
func (o *out) Say(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "   %s\n", fmt.Sprintf(format, args...))
}

// Quote prints a program's output, indented.
func (o *out) Quote(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for line := range strings.Lines(strings.TrimRight(s, "\n")) {
		fmt.Fprintf(o.w, "     %s", line)
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(o.w)
		}
	}
}

// Log prints a line of the daemon's log.
func (o *out) Log(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "     %s\n", o.style("2", s))
}
