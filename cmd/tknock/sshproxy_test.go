package main

import (
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// door is an in-test knock receiver on loopback: UDP listeners on every
// port of a 64-port knock range record the knocks, and once every port of
// the sequence of a window around now for source 127.0.0.1 was knocked (in
// any order), a TCP echo server starts on the protected port. Before that nothing listens
// there, so a connection is refused.
type door struct {
	e    *totpseq.Enrollment
	port uint16 // the protected port

	mu      sync.Mutex
	lose    int // knocks still to lose, as a network would
	knocks  []uint16
	opened  bool
	windows []uint64 // windows whose sequence opened the door
}

func newDoor(t *testing.T) *door {
	t.Helper()
	var conns []*net.UDPConn
	var lo uint16
	for try := 0; try < 20 && conns == nil; try++ {
		lo = uint16(20000 + rand.IntN(30000))
		for p := lo; p < lo+64; p++ {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)))
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				conns = nil
				break
			}
			conns = append(conns, c)
		}
	}
	if conns == nil {
		t.Skip("no 64 free UDP ports in a row on loopback")
	}
	p := totpseq.Defaults()
	p.Secret = testSecret
	p.Realm = "loopback"
	p.Proto = inet.UDP
	p.Range = totpseq.Range{Lo: lo, Hi: lo + 63}
	d := &door{e: &totpseq.Enrollment{Name: "alice", Host: "127.0.0.1", Params: p}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.port = ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ln.Close()

	for _, c := range conns {
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				if _, _, err := c.ReadFromUDP(buf); err != nil {
					return
				}
				d.knock(t, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			}
		}()
	}
	return d
}

func (d *door) knock(t *testing.T, port uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lose > 0 {
		d.lose--
		return
	}
	d.knocks = append(d.knocks, port)
	if d.opened || len(d.knocks) < d.e.Length {
		return
	}
	now := totpseq.Window(time.Now(), d.e.Period)
	for w := now - 1; w <= now+1; w++ {
		// Every port of the sequence knocked, in any order: the client
		// sends the bound ports back to back, and the door reads each
		// port on a goroutine of its own, which reorders them.
		seq, err := totpseq.Sequence(&d.e.Params, "ssh", w, netip.MustParseAddr("127.0.0.1"))
		if err != nil || slices.ContainsFunc(seq, func(p uint16) bool { return !slices.Contains(d.knocks, p) }) {
			continue
		}
		ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.port).String())
		if err != nil {
			t.Errorf("the door cannot open: %v", err)
			return
		}
		t.Cleanup(func() { ln.Close() })
		go echo(ln)
		d.opened = true
		d.windows = append(d.windows, w)
		return
	}
}

// echo echoes each connection until the client closes its writing half.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func (d *door) isOpen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opened
}

func TestSSHProxy(t *testing.T) {
	for _, viaProfile := range []bool{false, true} {
		name := map[bool]string{false: "enrollment file", true: "profile"}[viaProfile]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.real = true
			d := newDoor(t)
			port := strconv.Itoa(int(d.port))
			args := []string{"ssh-proxy", "127.0.0.1", port}
			if viaProfile {
				e.mustRun("enroll", "--file", writeEnrollment(t, d.e), "--name", "lo")
			} else {
				args = []string{"ssh-proxy", "--enrollment", writeEnrollment(t, d.e), "127.0.0.1", port}
			}
			e.stdin = strings.Repeat("SSH-2.0-tknock-test\r\n", 1000)
			code, out, errOut := e.run(args...)
			if code != 0 || errOut != "" {
				t.Fatalf("tknock %v: exit %d, stderr %q", args, code, errOut)
			}
			if !d.isOpen() {
				t.Fatal("the door never opened, yet ssh-proxy connected")
			}
			if out != e.stdin {
				t.Errorf("ssh-proxy piped back %d bytes, want the %d sent", len(out), len(e.stdin))
			}
			// Twice more at once: the second knock uses the next window,
			// the third none (both windows are used), and both get through
			// the open door.
			for i := 2; i <= 3; i++ {
				code, out, errOut := e.run(args...)
				if code != 0 || errOut != "" || out != e.stdin {
					t.Errorf("ssh-proxy run %d: exit %d, %d bytes back, stderr %q", i, code, len(out), errOut)
				}
			}
		})
	}
}

func TestKnockWait(t *testing.T) {
	e := newEnv(t)
	e.real = true
	d := newDoor(t)
	file := writeEnrollment(t, d.e)
	port := strconv.Itoa(int(d.port))

	// Bound to another source address, the sequence opens nothing.
	code, out, errOut := e.run("knock", "--enrollment", file, "--source", "127.0.0.2", "--wait", port, "--wait-timeout", "500ms")
	if code != 1 || out != "" || d.isOpen() {
		t.Errorf("knock from the wrong source: exit %d, stdout %q, door open %v; want exit 1, closed", code, out, d.isOpen())
	}
	for _, want := range []string{"the door did not open", "127.0.0.1:" + port, "refused", "check the clock", "the knock was bound to 127.0.0.2", "--source"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("wait failure message lacks %q:\n%s", want, errOut)
		}
	}

	code, out, errOut = e.run("knock", "--enrollment", file, "--wait", port)
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "127.0.0.1: ssh is open (port "+port+" accepted a connection after ") {
		t.Errorf("knock --wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !d.isOpen() {
		t.Error("the door did not open")
	}
}

// TestKnockWaitReknocks: every knock of the first attempt is lost; --wait
// knocks again after --reknock-after, in the next window, and gets in;
// with --reknock-after 0 it does not.
func TestKnockWaitReknocks(t *testing.T) {
	for _, reknock := range []bool{false, true} {
		e := newEnv(t)
		e.real = true
		d := newDoor(t)
		d.lose = d.e.Length * client.DefaultRounds
		file := writeEnrollment(t, d.e)
		port := strconv.Itoa(int(d.port))
		after := "0"
		if reknock {
			after = "300ms"
		}
		start := totpseq.Window(time.Now(), d.e.Period)
		code, out, errOut := e.run("knock", "--enrollment", file, "--wait", port, "--wait-timeout", "2s", "--reknock-after", after)
		if !reknock {
			if code != 1 || d.isOpen() {
				t.Errorf("knock --wait --reknock-after 0 with the knocks lost: exit %d, door open %v; want exit 1, closed", code, d.isOpen())
			}
			continue
		}
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "127.0.0.1: ssh is open (port "+port+" accepted a connection after ") {
			t.Fatalf("knock --wait with the first knocks lost: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		d.mu.Lock()
		windows := d.windows
		d.mu.Unlock()
		if len(windows) != 1 || (windows[0] != start+1 && windows[0] != start+2) {
			t.Errorf("the door opened for windows %v, want the one after the first knock's (%d)", windows, start)
		}
	}
}
