package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"
	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/version"
	"github.com/tknock/tknock/totpseq"
)

// app is one run of the command: its streams and the injected network and
// clock (nil means the real ones), so tests drive every command through
// run without touching the network.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	dialer         client.Dialer
	resolver       client.Resolver
	route          func(netip.Addr) (netip.Addr, error)
	now            func() time.Time

	cli *cli
	log zerolog.Logger
}

const description = `Knock a tknock server's door open, then connect (ssh, say) as usual.

  tknock enroll --qr code.png      store the enrollment the server's admin gave you
  tknock HOST                      knock for HOST's first service (same as: tknock knock HOST)
  tknock knock HOST web --wait 443 knock for service web, then wait until port 443 opens
  ssh -o ProxyCommand='tknock ssh-proxy %h %p' HOST

Profiles live in the user's config directory (tknock/ inside it), one file of
mode 0600 per server; the windows already used live in the user's cache
directory. TKNOCK_CONFIG_DIR and TKNOCK_CACHE_DIR override them.

Exit status: 0 on success, 1 when the command failed, 2 for a usage error.`

// cli is the command line.
type cli struct {
	Verbose   bool   `short:"v" help:"Print the steps to standard error (never a secret or a port of the current window)."`
	ConfigDir string `name:"config-dir" env:"TKNOCK_CONFIG_DIR" placeholder:"DIR" help:"Profile directory (default: the user's config directory/tknock)."`
	CacheDir  string `name:"cache-dir" env:"TKNOCK_CACHE_DIR" placeholder:"DIR" help:"Window memory directory (default: the user's cache directory/tknock)."`

	Version kong.VersionFlag `help:"Print the version (module version and VCS revision) and exit."`

	Knock    knockCmd    `cmd:"" default:"withargs" help:"Knock for a service (the default command: tknock HOST)."`
	Enroll   enrollCmd   `cmd:"" help:"Store an enrollment as a profile, from a URI, a file or a QR code image."`
	List     listCmd     `cmd:"" help:"List the profiles (never their secrets)."`
	Remove   removeCmd   `cmd:"" help:"Remove a profile."`
	Print    printCmd    `cmd:"" help:"Print the ports of a sequence, space separated, on one line (for conformance checks)."`
	SSHProxy sshProxyCmd `cmd:"" name:"ssh-proxy" help:"Knock, wait for the port, then pipe standard input and output to it: ssh's ProxyCommand."`

	Completion completionCmd `cmd:"" help:"Print the shell completion script for bash, zsh or fish (packages install it)."`
}

// exitCode is what kong's Exit hook panics with, so that --help returns
// from run instead of ending the process.
type exitCode int

func (a *app) run(ctx context.Context, args []string) (code int) {
	var c cli
	a.cli = &c
	a.log = zerolog.Nop()
	parser, err := kong.New(&c,
		kong.Name("tknock"),
		kong.Description(description),
		kong.Writers(a.stdout, a.stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.Bind(a),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": version.Read().String("tknock")},
	)
	if err != nil {
		fmt.Fprintf(a.stderr, "tknock: %v\n", err)
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	if code, ok := a.hidden(parser, args); ok {
		return code
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(a.stderr, "tknock: %v\nRun \"tknock --help\" for usage.\n", err)
		return 2
	}
	if c.Verbose {
		a.log = zerolog.New(zerolog.ConsoleWriter{
			Out: a.stderr, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName},
		}).Level(zerolog.DebugLevel)
	}
	if err := kctx.Run(); err != nil {
		fmt.Fprintf(a.stderr, "tknock: %v\n", err)
		return 1
	}
	return 0
}

func (a *app) time() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

func (a *app) warn(err error) { fmt.Fprintf(a.stderr, "tknock: warning: %v\n", err) }

func (a *app) store() (*client.Store, error) {
	dir := a.cli.ConfigDir
	if dir == "" {
		var err error
		if dir, err = client.ConfigDir(); err != nil {
			return nil, err
		}
	}
	return &client.Store{Dir: dir}, nil
}

func (a *app) memory() *client.Memory {
	dir := a.cli.CacheDir
	if dir == "" {
		var err error
		if dir, err = client.CacheDir(); err != nil {
			a.log.Debug().Err(err).Msg("no window memory")
			return nil
		}
	}
	return &client.Memory{Path: filepath.Join(dir, client.MemoryFile)}
}

// loaded is an enrollment and where it came from.
type loaded struct {
	*totpseq.Enrollment
	from    string    // "profile NAME" or the file name
	written time.Time // the file's modification time
}

// readEnrollment reads an enrollment file ("-": standard input).
func (a *app) readEnrollment(path string) (*loaded, error) {
	if path == "-" {
		e, err := enrollfile.Parse("standard input", a.stdin)
		if err != nil {
			return nil, err
		}
		return &loaded{Enrollment: e, from: "standard input"}, nil
	}
	e, err := enrollfile.Read(path)
	if err != nil {
		return nil, err
	}
	l := &loaded{Enrollment: e, from: path}
	if fi, err := os.Stat(path); err == nil {
		l.written = fi.ModTime()
	}
	return l, nil
}

// profile finds the profile named arg, or whose host is arg.
func (a *app) profile(arg string) (*loaded, error) {
	s, err := a.store()
	if err != nil {
		return nil, err
	}
	p, err := s.Find(arg)
	if err != nil {
		return nil, err
	}
	return &loaded{Enrollment: p.Enrollment, from: "profile " + p.Name, written: p.ModTime}, nil
}

// knockFlags are the flags of the commands that knock.
type knockFlags struct {
	Enrollment string        `placeholder:"FILE" help:"Knock with this enrollment file (\"-\": standard input) instead of a profile."`
	Source     string        `placeholder:"ADDR" help:"Source address bound into the sequence (default: this machine's outbound address towards the server; behind NAT, give the public one)."`
	Delay      time.Duration `default:"25ms" help:"Pause between two knocks."`
}

func parseSource(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--source %q: not an IP address", s)
	}
	return a.Unmap(), nil
}

// knock sends the knocks for l. A result wrapped with ErrWindowsUsed comes
// back with the error, for callers that go on to wait.
func (a *app) knock(ctx context.Context, l *loaded, host, service string, f *knockFlags) (*client.Result, error) {
	src, err := parseSource(f.Source)
	if err != nil {
		return nil, err
	}
	if f.Delay < 0 {
		return nil, fmt.Errorf("--delay %v: must not be negative", f.Delay)
	}
	now := a.time()
	if err := client.CheckClock(now, l.written); err != nil {
		a.warn(err)
	}
	k := &client.Knocker{
		Dialer:   a.dialer,
		Resolver: a.resolver,
		Route:    a.route,
		Now:      a.time,
		Delay:    f.Delay,
		Memory:   a.memory(),
		Log:      a.log,
	}
	a.log.Debug().Str("enrollment", l.from).Str("user", l.Name).Msg("knock")
	r, err := k.Knock(ctx, client.Request{Enrollment: l.Enrollment, Service: service, Host: host, Source: src})
	if err != nil && !errors.Is(err, client.ErrWindowsUsed) {
		return nil, fmt.Errorf("%s: %w", l.from, err)
	}
	return r, err
}

// wait waits for TCP port on the knocked address. note, if not empty, is
// added to a failure (why no knock was sent).
func (a *app) wait(ctx context.Context, l *loaded, r *client.Result, port uint16, timeout time.Duration, note error) (net.Conn, time.Duration, error) {
	if port == 0 {
		return nil, 0, errors.New("port 0: want 1..65535")
	}
	if timeout <= 0 {
		return nil, 0, fmt.Errorf("wait timeout %v: must be positive", timeout)
	}
	c, took, err := client.Wait(ctx, netip.AddrPortFrom(r.Addr, port), timeout)
	switch {
	case errors.Is(err, client.ErrNotOpen) && note != nil:
		return nil, took, fmt.Errorf("the door did not open: %w\n  no knock was sent: %w", err, note)
	case errors.Is(err, client.ErrNotOpen):
		return nil, took, fmt.Errorf("the door did not open: %w\n"+
			"  check the clock: the knock used time window %d (%d s each); a clock off by more than the server's skew opens nothing\n"+
			"  check the source address: the knock was bound to %v; behind NAT, give the public one with --source\n"+
			"  check that the server's tknockd lets user %s open service %s with %s knocks",
			err, r.Window, l.Period, r.Source, l.Name, r.Service, r.Proto)
	}
	return c, took, err
}
