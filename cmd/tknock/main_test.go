package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"fmt"
	"image/png"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp"
	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

// fakeNet records knocks and resolves names from a table; every
// destination is routed from 198.51.100.7 (IPv4) or 2001:db8:1::7.
type fakeNet struct {
	mu     sync.Mutex
	knocks []netip.AddrPort
	protos []inet.Proto
	names  map[string][]netip.Addr
	open   map[netip.AddrPort]bool // the ports that accept a connection
}

// connect is the fake network's TCP connect: a port in f.open accepts, any
// other refuses.
func (f *fakeNet) connect(_ context.Context, _, address string) (net.Conn, error) {
	dst, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	open := f.open[dst]
	f.mu.Unlock()
	if !open {
		return nil, fmt.Errorf("dial tcp %v: connect: connection refused", dst)
	}
	c, peer := net.Pipe()
	peer.Close()
	return c, nil
}

func (f *fakeNet) Knock(_ context.Context, proto inet.Proto, dst netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.knocks = append(f.knocks, dst)
	f.protos = append(f.protos, proto)
	return nil
}

func (f *fakeNet) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f.names[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

func route(dst netip.Addr) (netip.Addr, error) {
	if dst.Is4() {
		if dst.IsLoopback() {
			return dst, nil
		}
		return netip.MustParseAddr("198.51.100.7"), nil
	}
	return netip.MustParseAddr("2001:db8:1::7"), nil
}

func (f *fakeNet) ports() []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ps []uint16
	for _, k := range f.knocks {
		ps = append(ps, k.Port())
	}
	return ps
}

func (f *fakeNet) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.knocks, f.protos = nil, nil
}

// env is a test's tknock: its directories, network and clock.
type env struct {
	t      *testing.T
	config string
	cache  string
	net    *fakeNet
	now    time.Time
	stdin  string
	// literalURI passes --uri arguments through unchanged.
	literalURI bool
	real       bool // the real network and clock: no fakes
	// route and stun replace the fake route and add a STUN client when set.
	route func(netip.Addr) (netip.Addr, error)
	stun  client.Mapper
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	e := &env{
		t:      t,
		config: filepath.Join(dir, "config"),
		cache:  filepath.Join(dir, "cache"),
		net: &fakeNet{names: map[string][]netip.Addr{
			"ssh.example.com":  {netip.MustParseAddr("192.0.2.10")},
			"ssh6.example.com": {netip.MustParseAddr("2001:db8::10")},
			"localhost":        {netip.MustParseAddr("127.0.0.1")},
		}},
		now: time.Unix(1_800_000_010, 0), // 10 s into a window
	}
	t.Setenv("TKNOCK_CONFIG_DIR", e.config)
	t.Setenv("TKNOCK_CACHE_DIR", e.cache)
	return e
}

// run runs tknock with args and returns the exit code, stdout and stderr.
func (e *env) run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	stdin := e.stdin
	// A URI after --uri stands for the same URI pasted on standard input
	// (the command line never takes a secret).
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--uri" && args[i+1] != "-" && !e.literalURI {
			args = slices.Clone(args)
			stdin, args[i+1] = args[i+1], "-"
		}
	}
	a := &app{
		stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr,
		dialer: e.net, resolver: e.net, route: route, connect: e.net.connect,
		now: func() time.Time { return e.now },
	}
	if e.route != nil {
		a.route = e.route
	}
	a.stun = e.stun
	if e.real {
		a.dialer, a.resolver, a.route, a.now, a.connect = nil, nil, nil, nil, nil
	}
	code := a.run(e.t.Context(), args)
	return code, stdout.String(), stderr.String()
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("tknock %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func enrollment(t *testing.T, host string, proto inet.Proto, services ...string) *totpseq.Enrollment {
	t.Helper()
	p := totpseq.Defaults()
	p.Secret = testSecret
	p.Realm = "realm.example.org"
	p.Proto = proto
	if len(services) > 0 {
		p.Services = services
	}
	e := &totpseq.Enrollment{Name: "alice", Host: host, Params: p}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

func writeEnrollment(t *testing.T, e *totpseq.Enrollment) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alice.uri")
	if err := enrollfile.Write(path, e); err != nil {
		t.Fatal(err)
	}
	return path
}

func sequence(t *testing.T, e *totpseq.Enrollment, service string, at time.Time, next bool, src string) []uint16 {
	t.Helper()
	w := totpseq.Window(at, e.Period)
	if next {
		w++
	}
	ps, err := totpseq.Sequence(&e.Params, service, w, netip.MustParseAddr(src))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// sent returns the ports the command sends for seq: DefaultRounds rounds.
func sent(seq []uint16) []uint16 {
	var out []uint16
	for range client.DefaultRounds {
		out = append(out, seq...)
	}
	return out
}

func TestHelp(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"--help"}, {"knock", "--help"}, {"print", "--help"}, {"ssh-proxy", "-h"}} {
		code, out, _ := e.run(args...)
		if code != 0 || !strings.Contains(out, "Usage: tknock") {
			t.Errorf("tknock %v: exit %d, stdout %q", args, code, out)
		}
	}
	_, out, _ := e.run("--help")
	for _, want := range []string{"TKNOCK_CONFIG_DIR", "TKNOCK_CACHE_DIR", "ProxyCommand"} {
		if !strings.Contains(out, want) {
			t.Errorf("tknock --help does not mention %s", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enroll"}, "missing flags: --uri=- or --file=FILE or --qr=IMAGE"},
		{[]string{"enroll", "--uri", "x", "--file", "y"}, "--uri and --file can't be used together"},
		{[]string{"print", "--source", "192.0.2.1"}, "missing flags: --enrollment=FILE or --profile"},
		{[]string{"knock", "--wait", "70000", "x"}, "--wait"},
		{[]string{"ssh-proxy", "host"}, `expected "<port>"`},
		{[]string{"remove"}, `expected "<name>"`},
		{[]string{"knock", "--bogus"}, "unknown flag --bogus"},
	} {
		code, out, errOut := e.run(tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("tknock %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestEnrollURINotFromArgs: a URI on the command line is refused without
// being stored or echoed; only "--uri -" (standard input) reads one.
func TestEnrollURINotFromArgs(t *testing.T) {
	e := newEnv(t)
	e.literalURI = true
	uri := enrollment(t, "ssh.example.com", inet.TCP).URI()
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(testSecret)
	code, out, errOut := e.run("enroll", "--uri", uri)
	if code != 1 || !strings.Contains(errOut, "--uri takes \"-\"") || strings.Contains(out+errOut, secret) {
		t.Errorf("enroll --uri URI: exit %d, stdout %q, stderr %q; want exit 1, the --uri - hint, no secret", code, out, errOut)
	}
	if ents, _ := os.ReadDir(e.config); len(ents) != 0 {
		t.Errorf("a refused enroll stored %d files", len(ents))
	}
	e.stdin = uri
	e.mustRun("enroll", "--uri", "-")
}

func TestEnrollListRemove(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.TCP, "ssh", "web")
	uri := en.URI()
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(testSecret)

	code, out, errOut := e.run("enroll", "--uri", uri)
	if code != 0 || errOut != "" || !strings.Contains(out, "profile ssh.example.com: user alice at ssh.example.com, services ssh,web") {
		t.Fatalf("enroll --uri: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	path := filepath.Join(e.config, "ssh.example.com.uri")
	got, err := enrollfile.Read(path)
	if err != nil {
		t.Fatalf("the stored profile: %v", err)
	}
	if got.URI() != uri {
		t.Errorf("stored URI %q, want %q", got.URI(), uri)
	}

	// The same name again needs --force.
	code, _, errOut = e.run("enroll", "--uri", uri)
	if code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("second enroll: exit %d, stderr %q; want 1 and --force", code, errOut)
	}
	e.mustRun("enroll", "--uri", uri, "--force")

	// From standard input, under another name, with another host.
	e.stdin = uri + "\n"
	e.mustRun("enroll", "--uri", "-", "--name", "v6", "--host", "[2001:db8::10]")
	e.stdin = ""

	out = e.mustRun("list")
	want := strings.Join([]string{
		"NAME             HOST             USER   SERVICES  PROTO  RANGE        LEN  PERIOD",
		"ssh.example.com  ssh.example.com  alice  ssh,web   tcp    10000-32767  4    30s",
		"v6               [2001:db8::10]   alice  ssh,web   tcp    10000-32767  4    30s",
		"",
	}, "\n")
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if strings.Contains(out, secret) {
		t.Error("list shows the secret")
	}

	if out := e.mustRun("remove", "v6"); out != "removed profile v6\n" {
		t.Errorf("remove: %q", out)
	}
	code, _, errOut = e.run("remove", "v6")
	if code != 1 || !strings.Contains(errOut, `unknown profile "v6": known profiles: ssh.example.com`) {
		t.Errorf("remove of a removed profile: exit %d, stderr %q", code, errOut)
	}
}

func TestEnrollFromFileAndQR(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.UDP)
	file := writeEnrollment(t, en)
	e.mustRun("enroll", "--file", file, "--name", "fromfile")

	key, err := otp.NewKeyFromURL(en.URI())
	if err != nil {
		t.Fatal(err)
	}
	img, err := key.Image(400, 400)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	qr := filepath.Join(t.TempDir(), "qr.png")
	os.WriteFile(qr, buf.Bytes(), 0o644)
	e.mustRun("enroll", "--qr", qr, "--name", "fromqr")

	for _, name := range []string{"fromfile", "fromqr"} {
		got, err := enrollfile.Read(filepath.Join(e.config, name+".uri"))
		if err != nil {
			t.Fatal(err)
		}
		if got.URI() != en.URI() {
			t.Errorf("profile %s holds %q, want %q", name, got.URI(), en.URI())
		}
	}
}

func TestEnrollErrors(t *testing.T) {
	e := newEnv(t)
	noHost := writeEnrollment(t, enrollment(t, "", inet.TCP))
	loose := writeEnrollment(t, enrollment(t, "ssh.example.com", inet.TCP))
	good := writeEnrollment(t, enrollment(t, "ssh.example.com", inet.TCP))
	if runtime.GOOS != "windows" {
		os.Chmod(loose, 0o644)
	}
	badRange := strings.Replace(enrollment(t, "ssh.example.com", inet.TCP).URI(), "range=10000-32767", "range=9-8", 1)
	notImage := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(notImage, []byte("hello"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enroll", "--file", noHost}, "names no host to knock at: give one with --host"},
		{[]string{"enroll", "--file", loose}, "permissions are too open: mode 0644 lets other users read the secret; fix it with: chmod 600 " + loose},
		{[]string{"enroll", "--uri", badRange}, "parameter range"},
		{[]string{"enroll", "--uri", "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"}, "parameter tknock: missing: not a tknock enrollment"},
		{[]string{"enroll", "--qr", notImage}, "not a PNG, JPEG or GIF image"},
		{[]string{"enroll", "--file", filepath.Join(t.TempDir(), "none.uri")}, "no such file"},
		{[]string{"enroll", "--file", noHost, "--host", "ssh.example.com", "--name", "../x"}, `profile name "../x"`},
		{[]string{"enroll", "--file", noHost, "--host", "_x"}, "host \"_x\" makes no profile name: give one with --name"},
		{[]string{"enroll", "--file", good, "--check-port", "ssh:x"}, `--check-port "ssh:x": want [SERVICE:]PORT`},
		{[]string{"enroll", "--file", good, "--check-port", "0"}, `--check-port "0": want [SERVICE:]PORT`},
		{[]string{"enroll", "--file", good, "--check-port", "db:5432"}, `--check-port "db:5432": check port db:tcp/5432: no service "db" in this enrollment: it has ssh`},
	} {
		if tc.args[1] == "--file" && tc.args[2] == loose && runtime.GOOS == "windows" {
			continue
		}
		code, out, errOut := e.run(tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("tknock %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if names, _ := os.ReadDir(e.config); len(names) != 0 {
		t.Errorf("failed enrollments stored %d files", len(names))
	}
}

func TestKnock(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.UDP, "ssh", "web")
	e.mustRun("enroll", "--uri", en.URI(), "--name", "work")
	e.mustRun("enroll", "--uri", enrollment(t, "ssh6.example.com", inet.TCP).URI())

	for _, tc := range []struct {
		args    []string
		service string
		dst     string
		src     string
	}{
		{[]string{"knock", "work"}, "ssh", "192.0.2.10", "198.51.100.7"},
		{[]string{"work", "web"}, "web", "192.0.2.10", "198.51.100.7"},            // knock is the default command
		{[]string{"ssh.example.com", "ssh"}, "ssh", "192.0.2.10", "198.51.100.7"}, // by host
		{[]string{"knock", "--source", "203.0.113.9", "work"}, "ssh", "192.0.2.10", "203.0.113.9"},
		{[]string{"knock", "--host", "192.0.2.99", "work"}, "ssh", "192.0.2.99", "198.51.100.7"},
	} {
		e.net.reset()
		os.RemoveAll(e.cache) // each case in a fresh window
		code, out, errOut := e.run(tc.args...)
		// The test enrollment names no port to confirm the door with:
		// the knock is sent, and tknock says it cannot tell.
		if want := ": knocked for " + tc.service + "; not confirmed: the enrollment names no port to check"; code != 0 || !strings.Contains(out, want) || errOut != "" {
			t.Errorf("tknock %v: exit %d, stdout %q, stderr %q; want 0 and %q", tc.args, code, out, errOut, want)
			continue
		}
		want := sent(sequence(t, en, tc.service, e.now, false, tc.src))
		if diff := cmp.Diff(want, e.net.ports()); diff != "" {
			t.Errorf("tknock %v knocked (-want +got):\n%s", tc.args, diff)
		}
		for i, k := range e.net.knocks {
			if k.Addr().String() != tc.dst || e.net.protos[i] != inet.UDP {
				t.Errorf("tknock %v: knock %d %v to %v, want udp to %s", tc.args, i, e.net.protos[i], k.Addr(), tc.dst)
			}
		}
	}

	// A profile over IPv6, with TCP knocks.
	e.net.reset()
	e.mustRun("ssh6.example.com")
	if len(e.net.knocks) != 4*client.DefaultRounds || e.net.knocks[0].Addr() != netip.MustParseAddr("2001:db8::10") || e.net.protos[0] != inet.TCP {
		t.Errorf("IPv6 profile: knocks %v %v", e.net.knocks, e.net.protos)
	}
}

func TestKnockFromEnrollmentFile(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "", inet.TCP)
	file := writeEnrollment(t, en)
	e.mustRun("knock", "--enrollment", file, "192.0.2.5")
	want := sent(sequence(t, en, "ssh", e.now, false, "198.51.100.7"))
	if diff := cmp.Diff(want, e.net.ports()); diff != "" {
		t.Errorf("knocked (-want +got):\n%s", diff)
	}
	if e.net.knocks[0].Addr() != netip.MustParseAddr("192.0.2.5") {
		t.Errorf("knocked %v, want 192.0.2.5", e.net.knocks[0].Addr())
	}
	code, _, errOut := e.run("knock", "--enrollment", file)
	if code != 1 || !strings.Contains(errOut, "the enrollment has no host") {
		t.Errorf("knock without a host: exit %d, stderr %q", code, errOut)
	}
}

func TestKnockTwiceInOneWindow(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.TCP)
	file := writeEnrollment(t, en)
	e.mustRun("knock", "--enrollment", file)
	e.now = e.now.Add(5 * time.Second)
	e.net.reset()
	e.mustRun("knock", "--enrollment", file)
	if diff := cmp.Diff(sent(sequence(t, en, "ssh", e.now, true, "198.51.100.7")), e.net.ports()); diff != "" {
		t.Errorf("second knock in one window is not the next window's sequence (-want +got):\n%s", diff)
	}
	e.now = e.now.Add(5 * time.Second)
	e.net.reset()
	code, out, errOut := e.run("knock", "--enrollment", file)
	if code != 1 || out != "" || !strings.Contains(errOut, "the next knock can go in 10s") || len(e.net.knocks) != 0 {
		t.Errorf("third knock in one window: exit %d, stderr %q, %d knocks; want exit 1, a wait of 10s, no knock", code, errOut, len(e.net.knocks))
	}
	// The memory lives in the cache directory, not the config directory.
	if _, err := os.Stat(filepath.Join(e.cache, "windows.json")); err != nil {
		t.Errorf("window memory: %v", err)
	}
}

func TestKnockErrors(t *testing.T) {
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI(), "--name", "work")
	e.mustRun("enroll", "--uri", enrollment(t, "gone.example.com", inet.TCP).URI(), "--name", "gone")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown profile "nosuch": known profiles: gone, work`},
		{[]string{"knock"}, "no profile named and 2 profiles exist: name one of gone, work"},
		{[]string{"work", "db"}, `profile work: no service "db" in this enrollment: it has [ssh]`},
		{[]string{"gone"}, "profile gone: host gone.example.com: cannot resolve the name: lookup gone.example.com: no such host"},
		{[]string{"knock", "--source", "nope", "work"}, `--source "nope": not an IP address`},
		{[]string{"knock", "--source", "2001:db8::9", "work"}, "host ssh.example.com has no IPv6 address to match the source address 2001:db8::9"},
		{[]string{"knock", "--gap=-1s", "work"}, "--gap -1s: must not be negative"},
		{[]string{"knock", "--rounds=0", "work"}, "--rounds 0: want 1..10"},
		{[]string{"knock", "--rounds=11", "work"}, "--rounds 11: want 1..10"},
		{[]string{"knock", "--reknock-after=-1s", "work"}, "--reknock-after -1s: must not be negative"},
	} {
		e.net.reset()
		code, out, errOut := e.run(tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("tknock %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, errOut, tc.want)
		}
		if len(e.net.knocks) != 0 {
			t.Errorf("tknock %v sent %d knocks despite the error", tc.args, len(e.net.knocks))
		}
	}
}

func TestKnockLoosePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits on Windows")
	}
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI(), "--name", "work")
	path := filepath.Join(e.config, "work.uri")
	os.Chmod(path, 0o640)
	code, _, errOut := e.run("work")
	if code != 1 || !strings.Contains(errOut, "mode 0640 lets other users read the secret; fix it with: chmod 600 "+path) {
		t.Errorf("knock with a 0640 profile: exit %d, stderr %q", code, errOut)
	}
}

func TestKnockWrongClockWarns(t *testing.T) {
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI(), "--name", "work")
	e.now = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	code, out, errOut := e.run("work", "--no-wait")
	if code != 0 || out != "" || !strings.Contains(errOut, "tknock: warning: the system clock looks wrong: it reads 2001-01-01T00:00:00Z, before 2024") {
		t.Errorf("knock with the clock in 2001: exit %d, stdout %q, stderr %q; want 0 and a warning", code, out, errOut)
	}
	// The profile was written (by the real clock) long after e.now: the
	// clock was set back.
	e.now = time.Now().Add(-72 * time.Hour)
	os.RemoveAll(e.cache)
	if _, _, errOut := e.run("work"); !strings.Contains(errOut, "the clock was set back") {
		t.Errorf("knock with the clock set back 3 days: stderr %q, want a warning", errOut)
	}
}

func TestKnockVerboseShowsNoPorts(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.TCP)
	en.Length = 16
	e.mustRun("enroll", "--uri", en.URI(), "--name", "work")
	code, out, errOut := e.run("-v", "work", "--no-wait")
	if code != 0 || out != "" {
		t.Fatalf("-v knock: exit %d, stdout %q", code, out)
	}
	for _, step := range []string{"knock", "target", "window", "sent"} {
		if !strings.Contains(errOut, step) {
			t.Errorf("-v output lacks step %q:\n%s", step, errOut)
		}
	}
	for _, p := range e.net.ports() {
		if strings.Contains(errOut, fmt.Sprint(p)) {
			t.Errorf("-v output shows port %d:\n%s", p, errOut)
		}
	}
	if strings.Contains(errOut, base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(testSecret)) {
		t.Error("-v output shows the secret")
	}
}

func TestPrint(t *testing.T) {
	e := newEnv(t)
	en := enrollment(t, "ssh.example.com", inet.TCP, "ssh", "web")
	file := writeEnrollment(t, en)
	at := time.Unix(1_800_000_000, 0)
	wantLine := func(service, src string, at time.Time) string {
		ps := sequence(t, en, service, at, false, src)
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = fmt.Sprint(p)
		}
		return strings.Join(s, " ") + "\n"
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--enrollment", file, "--service", "web", "--source", "192.0.2.1", "--at", "1800000000"}, wantLine("web", "192.0.2.1", at)},
		{[]string{"--enrollment", file, "--source", "2001:db8::1", "--at", "1800000000"}, wantLine("ssh", "2001:db8::1", at)},
		{[]string{"--enrollment", file, "--source", "192.0.2.1"}, wantLine("ssh", "192.0.2.1", e.now)},
	} {
		code, out, errOut := e.run(append([]string{"print"}, tc.args...)...)
		if code != 0 || out != tc.want || errOut != "" {
			t.Errorf("print %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	e.stdin = en.URI()
	if _, out, _ := e.run("print", "--enrollment", "-", "--source", "192.0.2.1", "--at", "1800000000"); out != wantLine("ssh", "192.0.2.1", at) {
		t.Errorf("print from standard input: %q", out)
	}
	e.mustRun("enroll", "--file", file, "--name", "work")
	if _, out, _ := e.run("print", "--profile", "work", "--source", "192.0.2.1", "--at", "1800000000"); out != wantLine("ssh", "192.0.2.1", at) {
		t.Errorf("print --profile: %q", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--enrollment", file, "--source", "192.0.2"}, `--source "192.0.2": not an IP address`},
		{[]string{"--enrollment", file, "--source", "192.0.2.1", "--service", "db"}, `no service "db"`},
		{[]string{"--enrollment", file, "--source", "192.0.2.1", "--at=-5"}, "--at -5: must not be negative"},
		{[]string{"--profile", "nope", "--source", "192.0.2.1"}, `unknown profile "nope"`},
	} {
		code, out, errOut := e.run(append([]string{"print"}, tc.args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("print %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestEnvOverridesDirs checks that TKNOCK_CONFIG_DIR is where profiles go,
// and that --config-dir beats it.
func TestEnvOverridesDirs(t *testing.T) {
	e := newEnv(t)
	uri := enrollment(t, "ssh.example.com", inet.TCP).URI()
	e.mustRun("enroll", "--uri", uri, "--name", "a")
	other := filepath.Join(t.TempDir(), "other")
	e.mustRun("--config-dir", other, "enroll", "--uri", uri, "--name", "b")
	for dir, want := range map[string]string{e.config: "a.uri", other: "b.uri"} {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, ent := range ents {
			names = append(names, ent.Name())
		}
		if !slices.Equal(names, []string{want}) {
			t.Errorf("%s holds %v, want [%s]", dir, names, want)
		}
	}
}
