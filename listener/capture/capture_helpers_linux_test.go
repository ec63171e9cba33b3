package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener"
)

// testbed is a server and a client namespace joined by a veth pair:
// server 192.0.2.1 and 2001:db8:1::1, client 192.0.2.2 and 2001:db8:1::2.
type testbed struct {
	srv, cli       *nstest.NS
	srvIf, cliIf   string
	srvMAC, cliMAC net.HardwareAddr
	srvIndex       int
}

func newTestbed(t testing.TB) *testbed {
	t.Helper()
	nstest.RequireRoot(t)
	tb := &testbed{srv: nstest.New(t), cli: nstest.New(t)}
	tb.srvIf, tb.cliIf = nstest.Link(t, tb.srv, tb.cli,
		[]string{"192.0.2.1/24", "2001:db8:1::1/64"},
		[]string{"192.0.2.2/24", "2001:db8:1::2/64"})
	must(t, tb.srv.Do(func() error {
		ifc, err := net.InterfaceByName(tb.srvIf)
		if err != nil {
			return err
		}
		tb.srvMAC, tb.srvIndex = ifc.HardwareAddr, ifc.Index
		return nil
	}))
	must(t, tb.cli.Do(func() error {
		ifc, err := net.InterfaceByName(tb.cliIf)
		if err != nil {
			return err
		}
		tb.cliMAC = ifc.HardwareAddr
		return nil
	}))
	return tb
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// listenIn opens a capture inside ns; the test closes it at the end.
func listenIn(t testing.TB, ns *nstest.NS, cfg Config) *Conn {
	t.Helper()
	var c *Conn
	must(t, ns.Do(func() error {
		var err error
		c, err = Listen(cfg)
		return err
	}))
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// sendUDP sends one datagram from ns through the kernel's stack.
func sendUDP(t testing.TB, ns *nstest.NS, dst string, port uint16) {
	t.Helper()
	must(t, ns.Do(func() error {
		c, err := net.Dial("udp", net.JoinHostPort(dst, strconv.Itoa(int(port))))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("knock"))
		return err
	}))
}

// sendSYN makes the kernel's stack in ns send a TCP SYN: a connect that is
// abandoned after a short while (the port is closed or dropped).
func sendSYN(t testing.TB, ns *nstest.NS, dst string, port uint16) {
	t.Helper()
	must(t, ns.Do(func() error {
		d := net.Dialer{Timeout: 100 * time.Millisecond}
		c, err := d.Dial("tcp", net.JoinHostPort(dst, strconv.Itoa(int(port))))
		if err == nil {
			c.Close()
		}
		return nil // refused or timed out: the SYN went out either way
	}))
}

// sendRaw sends Ethernet frames as they are from interface ifName in ns,
// through an AF_PACKET socket.
func sendRaw(t testing.TB, ns *nstest.NS, ifName string, frames ...[]byte) {
	t.Helper()
	must(t, ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(unix.ETH_P_ALL)}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send raw frame: %w", err)
			}
		}
		return nil
	}))
}

// result is one frame read from a capture and what the decoder made of it.
type result struct {
	frame listener.Frame // Data copied
	knock listener.Knock
	ok    bool
}

// collect reads and decodes frames from c until it is closed.
func collect(c *Conn, ranges []inet.Range) <-chan result {
	ch := make(chan result, 1024)
	go func() {
		defer close(ch)
		d := listener.NewDecoder(ranges)
		for {
			f, err := c.ReadFrame()
			if errors.Is(err, listener.ErrClosed) {
				return
			}
			if err != nil {
				ch <- result{frame: listener.Frame{Data: []byte(err.Error())}}
				continue
			}
			k, ok := d.Decode(f)
			f.Data = append([]byte(nil), f.Data...)
			ch <- result{frame: f, knock: k, ok: ok}
		}
	}()
	return ch
}

// until returns the results up to and including the knock to the sentinel
// port, or fails after a few seconds.
func until(t testing.TB, ch <-chan result, sentinel uint16) []result {
	t.Helper()
	var got []result
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r, open := <-ch:
			if !open {
				t.Fatalf("capture closed before the sentinel knock to %d; got %d frames", sentinel, len(got))
			}
			got = append(got, r)
			if r.ok && r.knock.Port == sentinel {
				return got
			}
		case <-timeout:
			t.Fatalf("no sentinel knock to %d after 5s; got %d frames: %v", sentinel, len(got), got)
		}
	}
}

// knocks returns the knocks of results without their times, and fails for
// any frame that is not a knock (the filter let it through).
func knocks(t testing.TB, rs []result) []listener.Knock {
	t.Helper()
	var ks []listener.Knock
	for _, r := range rs {
		if !r.ok {
			t.Errorf("a frame that is not a knock reached user space: % x", r.frame.Data)
			continue
		}
		k := r.knock
		if k.Time.IsZero() || time.Since(k.Time) > time.Minute || time.Until(k.Time) > time.Second {
			t.Errorf("knock %v:%d has capture time %v, not about now", k.Src, k.Port, k.Time)
		}
		k.Time = time.Time{}
		ks = append(ks, k)
	}
	return ks
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

const (
	tcp = inet.TCP
	udp = inet.UDP
)

// tap is a packet socket on all interfaces of a namespace, with no
// filter: it receives every frame the namespace receives, whatever a
// capture's filter makes of it.
type tap struct{ fd int }

// openTap opens a tap in ns; the test closes it at the end.
func openTap(t testing.TB, ns *nstest.NS) *tap {
	t.Helper()
	fd := -1
	must(t, ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	}))
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	must(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	return &tap{fd: fd}
}

// count reads the frames received until the Ethernet frame last, and
// returns how many of the Ethernet frames frames came before it. A frame
// is one of them if its data and protocol field are the frame's payload
// and EtherType. It fails after 5 s without last.
func (p *tap) count(t testing.TB, frames [][]byte, last []byte) int {
	t.Helper()
	buf := make([]byte, 2048)
	n := 0
	for {
		m, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			t.Fatalf("tap: waiting for the last frame: %v", err)
		}
		sa, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sa.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		is := func(f []byte) bool {
			return htons(sa.Protocol) == binary.BigEndian.Uint16(f[12:]) && bytes.Equal(buf[:m], f[14:])
		}
		if is(last) {
			return n
		}
		for _, f := range frames {
			if is(f) {
				n++
				break
			}
		}
	}
}
