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
	"strings"
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
	stun           client.Mapper      // nil: the real STUN client
	connect        client.ConnectFunc // the connections that confirm a door opened; nil: the real network
	now            func() time.Time

	cli *cli
	log zerolog.Logger
}

const description = `Knock a tknock server's door open, then connect (ssh, say) as usual.

  tknock enroll --qr code.png      store the enrollment the server's admin gave you
  tknock HOST                      knock for HOST's first service, and say whether the door opened
  tknock knock HOST web --no-wait  knock for service web, and exit at once
  ssh -o ProxyCommand='tknock ssh-proxy -- %h %p' HOST
  tknock help [COMMAND]            this help, or a command's (tknock version: the version)

Profiles live in the user's config directory (tknock/ inside it), one file of
mode 0600 per server; the windows already used live in the user's cache
directory. TKNOCK_CONFIG_DIR and TKNOCK_CACHE_DIR override them.

Exit status: 0 on success (a knock: the door is open, or nothing can confirm
it, which it says), 1 when the command failed or the door stayed shut, 2 for
a usage error.`

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
		kong.Help(usageHelp),
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
	kctx, err := parser.Parse(commandWords(args))
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

// profile finds the profile named arg, or whose host is arg, or failing
// those, whose host resolves to an address arg resolves to.
func (a *app) profile(ctx context.Context, arg string) (*loaded, error) {
	s, err := a.store()
	if err != nil {
		return nil, err
	}
	var r client.Resolver = net.DefaultResolver
	if a.resolver != nil {
		r = a.resolver
	}
	p, err := s.FindResolved(ctx, arg, r)
	if err != nil {
		return nil, err
	}
	return &loaded{Enrollment: p.Enrollment, from: "profile " + p.Name, written: p.ModTime}, nil
}

// knockFlags are the flags of the commands that knock.
type knockFlags struct {
	Enrollment string        `placeholder:"FILE" help:"Knock with this enrollment file (\"-\": standard input) instead of a profile."`
	Source     string        `placeholder:"ADDR" help:"Source address bound into the sequence (default: this machine's outbound address towards the server; behind NAT, the public address a STUN server reports)."`
	STUN       []string      `name:"stun" placeholder:"HOST:PORT" help:"STUN server to ask for the public address when this machine is behind NAT (repeat for more); asked along with the enrollment's."`
	IPv4       bool          `name:"ipv4" short:"4" xor:"family" help:"Knock over IPv4 only (default: every family the host has and this machine can reach)."`
	IPv6       bool          `name:"ipv6" short:"6" xor:"family" help:"Knock over IPv6 only."`
	Gap        time.Duration `default:"1ms" help:"Pause after each anchor knock and between rounds; the bound ports go back to back."`
	Rounds     int           `default:"3" help:"Times the sequence is sent (1..10): copies of a port are free, and a lost knock then costs nothing."`
	// ReknockAfter applies while knock waits for the door, and to ssh-proxy.
	ReknockAfter time.Duration `name:"reknock-after" default:"1s" help:"While waiting for the door (a knock without --no-wait, and ssh-proxy): knock again (in the next time window) when the port has not opened after this long; 0: never."`
}

// family returns the family -4 or -6 asks for.
func (f *knockFlags) family() client.Family {
	switch {
	case f.IPv4:
		return client.IPv4
	case f.IPv6:
		return client.IPv6
	}
	return client.AnyFamily
}

// stunServers checks the --stun flags and returns them in canonical form.
func (f *knockFlags) stunServers() ([]string, error) {
	out := make([]string, 0, len(f.STUN))
	for _, s := range f.STUN {
		c, err := totpseq.ParseSTUNServer(s)
		if err != nil {
			return nil, fmt.Errorf("--stun %w", err)
		}
		out = append(out, c)
	}
	return out, nil
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

// knock sends the knocks for l, over every family the host has and this
// machine reaches (client.KnockFamilies), and returns a result per family.
// When no family sent a knock because their windows were used, the results
// come back with an error wrapping ErrWindowsUsed, for callers that go on to
// wait. A family that failed while another was knocked is a warning.
func (a *app) knock(ctx context.Context, l *loaded, host, service string, f *knockFlags) ([]*client.Result, error) {
	src, err := parseSource(f.Source)
	if err != nil {
		return nil, err
	}
	servers, err := f.stunServers()
	if err != nil {
		return nil, err
	}
	if f.Gap < 0 {
		return nil, fmt.Errorf("--gap %v: must not be negative", f.Gap)
	}
	if f.Rounds < 1 || f.Rounds > client.MaxRounds {
		return nil, fmt.Errorf("--rounds %d: want 1..%d", f.Rounds, client.MaxRounds)
	}
	if f.ReknockAfter < 0 {
		return nil, fmt.Errorf("--reknock-after %v: must not be negative", f.ReknockAfter)
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
		Gap:      f.Gap,
		Rounds:   f.Rounds,
		Memory:   a.memory(),
		NATCache: a.natCache(),
		STUN:     a.mapper(),
		Log:      a.log,
	}
	a.log.Debug().Str("enrollment", l.from).Str("user", l.Name).Msg("knock")
	rs, err := k.KnockFamilies(ctx, client.Request{Enrollment: l.Enrollment, Service: service, Host: host, Source: src,
		STUN: servers, Family: f.family()})
	sent := false
	for _, r := range rs {
		a.log.Info().Stringer("family", familyOf(r.Addr)).Stringer("addr", r.Addr).Stringer("source", r.Source).
			Str("source_from", r.From).Int("knocks", r.Knocks).Msg("knocked")
		sent = sent || r.Knocks > 0
	}
	switch {
	case len(rs) == 0 && err == nil:
		return nil, fmt.Errorf("%s: nothing was knocked", l.from)
	case len(rs) == 0 && errors.Is(err, client.ErrWindowsUsed):
		// Callers wait on the results of this error: without any, it is
		// a plain failure.
		return nil, fmt.Errorf("%s: %v", l.from, err)
	case len(rs) == 0:
		return nil, fmt.Errorf("%s: %w", l.from, err)
	case err != nil && sent:
		// Another family got its knock: say why this one did not.
		a.warn(fmt.Errorf("%s: %w", l.from, err))
		return rs, nil
	case err != nil && !errors.Is(err, client.ErrWindowsUsed):
		return nil, fmt.Errorf("%s: %w", l.from, err)
	}
	return rs, err
}

// familyOf returns the family of a.
func familyOf(a netip.Addr) client.Family {
	if a.Unmap().Is4() {
		return client.IPv4
	}
	return client.IPv6
}

// mapper is the injected STUN client, or the real one.
func (a *app) mapper() client.Mapper {
	if a.stun != nil {
		return a.stun
	}
	return &client.STUN{Resolver: a.resolver}
}

// natCache is the STUN answer cache in the cache directory; nil when
// there is no cache directory.
func (a *app) natCache() *client.NATCache {
	m := a.memory()
	if m == nil {
		return nil
	}
	return &client.NATCache{Path: filepath.Join(filepath.Dir(m.Path), client.NATCacheFile)}
}

// reknock returns the function that knocks again for the wait, as the
// first knock did (every family; the window memory picks the next window),
// or nil when f turns re-knocking off.
func (a *app) reknock(l *loaded, host, service string, f *knockFlags) func(context.Context) error {
	if f.ReknockAfter == 0 {
		return nil
	}
	return func(ctx context.Context) error {
		rs, err := a.knock(ctx, l, host, service, f)
		if err != nil {
			a.log.Debug().Err(err).Msg("no knock again")
			return err
		}
		a.log.Debug().Uint64("window", rs[0].Window).Dur("after", f.ReknockAfter).Msg("the door had not opened: knocked again")
		return nil
	}
}

// wait waits for TCP port on the knocked addresses (one per family, the
// first to accept wins), knocking again with reknock (if not nil) every
// f.ReknockAfter while the door stays shut. note, if not empty, is added
// to a failure (why no knock was sent).
func (a *app) wait(ctx context.Context, l *loaded, rs []*client.Result, port uint16, timeout time.Duration, f *knockFlags, reknock func(context.Context) error, note error) (net.Conn, time.Duration, error) {
	if port == 0 {
		return nil, 0, errors.New("port 0: want 1..65535")
	}
	if timeout <= 0 {
		return nil, 0, fmt.Errorf("wait timeout %v: must be positive", timeout)
	}
	dsts := make([]netip.AddrPort, len(rs))
	bound := make([]string, len(rs))
	for i, r := range rs {
		dsts[i] = netip.AddrPortFrom(r.Addr, port)
		bound[i] = fmt.Sprintf("%v (%s)", r.Source, r.From)
	}
	r := rs[0]
	c, dst, took, err := client.WaitAnyConnect(ctx, a.connect, dsts, timeout, f.ReknockAfter, reknock)
	if err == nil {
		a.log.Debug().Stringer("addr", dst.Addr()).Msg("port open")
	}
	switch {
	case errors.Is(err, client.ErrNotOpen) && note != nil:
		return nil, took, fmt.Errorf("the door did not open: %w\n  no knock was sent: %w", err, note)
	case errors.Is(err, client.ErrNotOpen):
		return nil, took, fmt.Errorf("the door did not open: %w\n%s", err, a.hints(l, r, bound))
	}
	return c, took, err
}

// hints says what to check when a knock opened nothing: the clock (this
// machine's time, how far off the server tolerates, and what the admin
// sees in the daemon's log), the source address, and the enrollment.
func (a *app) hints(l *loaded, r *client.Result, bound []string) string {
	now := a.time().UTC().Format("2006-01-02 15:04:05 UTC")
	return fmt.Sprintf("  check the clock: this machine's clock reads %s; the server opens nothing for a clock off by more than "+
		"its skew x %d s (%d s with the default skew of 1); the server's admin then sees in tknockd's log "+
		"reason=clock_skew with offset=N, the clock being N periods of %d s ahead (N < 0: behind; off by more than 5 periods, tknockd's default, no line)\n"+
		"  check the source address: the knock was bound to %s; behind NAT, the server sees the router's public address: "+
		"give it with --source, or a STUN server with --stun\n"+
		"  check that the server's tknockd lets user %s open service %s with %s knocks "+
		"(a revoked user opens nothing)",
		now, l.Period, l.Period, l.Period, strings.Join(bound, ", "), l.Name, r.Service, r.Proto)
}
