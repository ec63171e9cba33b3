package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tknock/tknock/internal/nstest"
)

// family selects the address family a test's traffic uses. Every
// namespace is dual stack; the family picks which addresses knock and
// connect.
type family int

const (
	v4 family = 4
	v6 family = 6
)

func (f family) String() string { return fmt.Sprintf("ipv%d", int(f)) }

// Addresses of the topology, for each family. The server has one link to
// the client (192.0.2.0/24, 2001:db8:1::/64) and one to the stranger
// (198.51.100.0/24, 2001:db8:2::/64); the client and the stranger route
// everything through it, so both reach the server at the same address.
// spoofed is nobody's: the stranger forges it.
var addrs = map[family]struct{ server, client, stranger, spoofed netip.Addr }{
	v4: {
		server:   netip.MustParseAddr("192.0.2.1"),
		client:   netip.MustParseAddr("192.0.2.2"),
		stranger: netip.MustParseAddr("198.51.100.2"),
		spoofed:  netip.MustParseAddr("203.0.113.77"),
	},
	v6: {
		server:   netip.MustParseAddr("2001:db8:1::1"),
		client:   netip.MustParseAddr("2001:db8:1::2"),
		stranger: netip.MustParseAddr("2001:db8:2::2"),
		spoofed:  netip.MustParseAddr("2001:db8:3::77"),
	},
}

// env is one test's world: three namespaces, their links, a scratch
// directory, and the addresses of the family under test.
type env struct {
	t   *testing.T
	fam family
	dir string // scratch: config, users, the client's files

	server, client, stranger   *nstest.NS
	srvToClient, srvToStranger string // the server's interfaces
	clientIf, strangerIf       string // the peers' interfaces

	serverAddr, clientAddr, strangerAddr, spoofedAddr netip.Addr

	secrets *[]string // base32 secrets of the test's users, shared with subtests: no log may show them

	sandbox      []string   // a command and its arguments that the server's tknockd runs under (the unit's sandbox); nil: none
	sandboxFiles []*os.File // files the sandbox gets as descriptors 3 and up
	daemonEnv    []string   // more environment for the daemons spawnDaemon starts
}

// newEnv builds the namespaces and links of one test. The namespaces, and
// with them the links, the nftables table and any process left inside, go
// away at the test's cleanup.
func newEnv(t *testing.T, fam family) *env {
	t.Helper()
	nstest.RequireRoot(t)
	e := &env{
		t:        t,
		fam:      fam,
		dir:      t.TempDir(),
		server:   nstest.New(t),
		client:   nstest.New(t),
		stranger: nstest.New(t),
		secrets:  new([]string),
	}
	a := addrs[fam]
	e.serverAddr, e.clientAddr, e.strangerAddr, e.spoofedAddr = a.server, a.client, a.stranger, a.spoofed
	e.srvToClient, e.clientIf = e.link(e.client, "c", []string{"192.0.2.1/24", "2001:db8:1::1/64"}, []string{"192.0.2.2/24", "2001:db8:1::2/64"})
	e.srvToStranger, e.strangerIf = e.link(e.stranger, "x", []string{"198.51.100.1/24", "2001:db8:2::1/64"}, []string{"198.51.100.2/24", "2001:db8:2::2/64"})
	e.client.MustRun(t, "ip", "route", "add", "default", "via", "192.0.2.1")
	e.client.MustRun(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
	e.stranger.MustRun(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	e.stranger.MustRun(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1")
	return e
}

// link joins the server to peer with a veth pair. nstest.Link names both
// ends after their namespaces, so the server, which has two links, gets
// names with a tag instead.
func (e *env) link(peer *nstest.NS, tag string, srvAddrs, peerAddrs []string) (srvIf, peerIf string) {
	t := e.t
	t.Helper()
	srvIf, peerIf = "s"+tag+peer.Name[2:], "p"+tag+peer.Name[2:]
	e.server.MustRun(t, "ip", "link", "add", srvIf, "type", "veth", "peer", "name", peerIf, "netns", peer.Name)
	for _, side := range []struct {
		ns    *nstest.NS
		ifc   string
		addrs []string
	}{{e.server, srvIf, srvAddrs}, {peer, peerIf, peerAddrs}} {
		side.ns.MustRun(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf."+side.ifc+".accept_dad=0")
		for _, addr := range side.addrs {
			side.ns.MustRun(t, "ip", "addr", "add", addr, "dev", side.ifc, "nodad")
		}
		side.ns.MustRun(t, "ip", "link", "set", side.ifc, "up")
	}
	return srvIf, peerIf
}

// serve starts the protected service: a TCP echo server on every address
// of the server namespace, port port. It stops at the test's cleanup.
func (e *env) serve(port uint16) {
	e.t.Helper()
	e.serveIn(e.server, port)
}

// serveIn starts a TCP echo server on every address of ns, port port, until
// the test's cleanup.
func (e *env) serveIn(ns *nstest.NS, port uint16) {
	t := e.t
	t.Helper()
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("protected service on port %d: %v", port, err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards conns and closed
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
}

// Bounds of a connection attempt to a protected port. On a veth pair an
// accepted SYN is answered at once and a dropped one only gets retransmitted
// after a second, so a second tells "dropped" from "accepted"; a connection
// that must succeed gets more, for a machine busy with the parallel tests.
const (
	refuseTimeout  = time.Second
	connectTimeout = 3 * time.Second
)

// dial connects from inside ns to the server's port and checks one echo
// round trip. The connection (when err is nil) belongs to the caller.
func (e *env) dial(ns *nstest.NS, port uint16, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(e.serverAddr, port).String(), timeout)
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

// echo writes msg on c and expects it back.
func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return fmt.Errorf("echo: write: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("echo: read: %w", err)
	}
	if got := strings.TrimSuffix(line, "\n"); got != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// nsName names a namespace of the test in messages.
func (e *env) nsName(ns *nstest.NS) string {
	switch ns {
	case e.server:
		return "server"
	case e.client:
		return "client"
	case e.stranger:
		return "stranger"
	}
	return ns.Name
}

// mustConnect fails the test unless a connection from ns to port
// succeeds. It returns the connection, closed at cleanup.
func (e *env) mustConnect(ns *nstest.NS, port uint16) net.Conn {
	e.t.Helper()
	c, err := e.dial(ns, port, connectTimeout)
	if err != nil {
		e.t.Fatalf("connect from the %s to %v port %d: %v; want it to succeed", e.nsName(ns), e.serverAddr, port, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// mustRefuse fails the test if a connection from ns to port succeeds.
func (e *env) mustRefuse(ns *nstest.NS, port uint16) {
	e.t.Helper()
	c, err := e.dial(ns, port, refuseTimeout)
	if err == nil {
		c.Close()
		e.t.Fatalf("connect from the %s to %v port %d succeeded; want it refused", e.nsName(ns), e.serverAddr, port)
	}
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		// A dropped SYN times out; anything else (a reset, no route)
		// means the test's network is not what it thinks it is.
		e.t.Fatalf("connect from the %s to %v port %d: %v; want a timeout (SYN dropped by the firewall)", e.nsName(ns), e.serverAddr, port, err)
	}
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// writeFile writes a file in the scratch directory and returns its path.
func (e *env) writeFile(name, content string, mode os.FileMode) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// in returns e for use inside the subtest t: the same world, with t's
// failures and cleanups.
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}
