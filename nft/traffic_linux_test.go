package nft

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

const dialTimeout = time.Second

// TestTraffic sends real TCP and UDP traffic from a client namespace to a
// server namespace, where the table protects tcp/2222 and udp/5353.
func TestTraffic(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client string // addresses on the veth pair
	}{
		{"IPv4", "192.0.2.1", "192.0.2.2"},
		{"IPv6", "2001:db8:1::1", "2001:db8:1::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testTraffic(t, netip.MustParseAddr(tc.server), netip.MustParseAddr(tc.client))
		})
	}
}

func testTraffic(t *testing.T, server, client netip.Addr) {
	srv, cli := newNS(t), newNS(t)
	bits := 24
	if server.Is6() {
		bits = 64
	}
	nstest.Link(t, srv, cli,
		[]string{netip.PrefixFrom(server, bits).String()},
		[]string{netip.PrefixFrom(client, bits).String()})
	echoTCP(t, srv, 2222) // protected
	echoTCP(t, srv, 2223) // not protected
	echoUDP(t, srv, 5353) // protected

	cfg := Config{
		Protected:  []Endpoint{{inet.TCP, 2222}, {inet.UDP, 5353}},
		Knocks:     []inet.Range{{Proto: inet.TCP, Lo: 10000, Hi: 10999}, {Proto: inet.UDP, Lo: 40000, Hi: 40999}},
		DropKnocks: true,
	}
	tb := open(t, srv, cfg)
	ensure(t, tb)
	at := func(port uint16) string { return netip.AddrPortFrom(server, port).String() }

	// Before any grant.
	if c, err := dialTCP(cli, at(2222)); !isTimeout(err) {
		closeIf(c)
		t.Errorf("TCP connect to protected port before Allow: error = %v, want a timeout (dropped)", err)
	}
	if _, err := udpExchange(cli, at(5353)); !isTimeout(err) {
		t.Errorf("UDP to protected port before Allow: error = %v, want no answer", err)
	}
	checkUnprotected(t, cli, at)
	if c, err := dialTCP(cli, at(10500)); !isTimeout(err) {
		closeIf(c)
		t.Errorf("TCP connect to a knock port: error = %v, want a timeout (filtered, no RST)", err)
	}
	if _, err := udpExchange(cli, at(40500)); !isTimeout(err) {
		t.Errorf("UDP to a knock port: error = %v, want no answer (filtered, no ICMP)", err)
	}

	// During the grant.
	svc := Service{Name: "test", Endpoints: cfg.Protected}
	const ttl = 2 * time.Second
	if err := tb.Allow(client, svc, ttl); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	held, err := dialTCP(cli, at(2222))
	if err != nil {
		t.Fatalf("TCP connect to protected port after Allow: %v", err)
	}
	defer held.Close()
	if err := echo(held, "during"); err != nil {
		t.Errorf("echo over the granted connection: %v", err)
	}
	udpHeld, err := udpDial(cli, at(5353))
	if err != nil {
		t.Fatal(err)
	}
	defer udpHeld.Close()
	if err := echo(udpHeld, "during"); err != nil {
		t.Errorf("UDP echo during the grant: %v", err)
	}
	checkUnprotected(t, cli, at)

	// After the grant expired.
	time.Sleep(time.Until(granted.Add(ttl + 200*time.Millisecond)))
	if g := grants(t, tb); len(g) != 0 {
		t.Errorf("Grants %v after the ttl, want none", g)
	}
	if c, err := dialTCP(cli, at(2222)); !isTimeout(err) {
		closeIf(c)
		t.Errorf("new TCP connect after expiry: error = %v, want a timeout (dropped)", err)
	}
	if _, err := udpExchange(cli, at(5353)); !isTimeout(err) {
		t.Errorf("new UDP flow after expiry: error = %v, want no answer", err)
	}
	if err := echo(held, "after"); err != nil {
		t.Errorf("connection established during the grant, after expiry: %v", err)
	}
	// UDP is decided per datagram, without conntrack: a flow ends with its
	// grant.
	if err := echo(udpHeld, "after"); !isTimeout(err) {
		t.Errorf("UDP flow established during the grant, after expiry: error = %v, want no answer (stateless)", err)
	}
	checkUnprotected(t, cli, at)

	// Without DropKnocks a knock port is closed like any other.
	cfg.DropKnocks = false
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if c, err := dialTCP(cli, at(10500)); !errors.Is(err, syscall.ECONNREFUSED) {
		closeIf(c)
		t.Errorf("TCP connect to a knock port without DropKnocks: error = %v, want connection refused", err)
	}
	if err := echo(held, "after update"); err != nil {
		t.Errorf("established connection after Update: %v", err)
	}
}

// checkUnprotected: a port that is not protected is not affected at all,
// open or closed.
func checkUnprotected(t *testing.T, cli *nstest.NS, at func(uint16) string) {
	t.Helper()
	c, err := dialTCP(cli, at(2223))
	if err != nil {
		t.Errorf("TCP connect to an open unprotected port: %v", err)
		return
	}
	defer c.Close()
	if err := echo(c, "open"); err != nil {
		t.Errorf("echo on an unprotected port: %v", err)
	}
	if c, err := dialTCP(cli, at(2224)); !errors.Is(err, syscall.ECONNREFUSED) {
		closeIf(c)
		t.Errorf("TCP connect to a closed unprotected port: error = %v, want connection refused", err)
	}
}

func dialTCP(ns *nstest.NS, addr string) (c net.Conn, err error) {
	err = ns.Do(func() error {
		c, err = net.DialTimeout("tcp", addr, dialTimeout)
		return err
	})
	return c, err
}

func udpDial(ns *nstest.NS, addr string) (c net.Conn, err error) {
	err = ns.Do(func() error {
		c, err = net.Dial("udp", addr)
		return err
	})
	return c, err
}

// udpExchange sends one datagram from a new socket and waits for the echo.
func udpExchange(ns *nstest.NS, addr string) (string, error) {
	c, err := udpDial(ns, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return "", echo(c, "knock")
}

// echo writes msg and expects it back within dialTimeout.
func echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo returned " + string(buf))
	}
	return nil
}

// isTimeout reports whether err is a timeout: the packets were dropped
// without an answer.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func closeIf(c net.Conn) {
	if c != nil {
		c.Close()
	}
}

// echoTCP serves a TCP echo on [::]:port in ns (IPv4 and IPv6) until the
// test ends.
func echoTCP(t *testing.T, ns *nstest.NS, port int) {
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// echoUDP serves a UDP echo on [::]:port in ns until the test ends.
func echoUDP(t *testing.T, ns *nstest.NS, port int) {
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenUDP("udp", &net.UDPAddr{Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// TestTrafficExternal checks the lines the package documentation gives
// administrators: with them in their own table, Allow opens the port.
func TestTrafficExternal(t *testing.T) {
	srv, cli := newNS(t), newNS(t)
	nstest.Link(t, srv, cli, []string{"192.0.2.1/24", "2001:db8:1::1/64"}, []string{"192.0.2.2/24", "2001:db8:1::2/64"})
	echoTCP(t, srv, 2222)
	srv.MustRun(t, "nft", "-f", writeTemp(t, `table inet filter {
	set tknock4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
	set tknock6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		ip saddr . meta l4proto . th dport @tknock4 accept
		ip6 saddr . meta l4proto . th dport @tknock6 accept
		tcp dport 2222 drop
	}
}
`))
	tb := open(t, srv, Config{External: &ExternalSets{Family: "inet", Table: "filter", Set4: "tknock4", Set6: "tknock6"}})
	ensure(t, tb)
	for _, tc := range []struct{ server, client string }{
		{"192.0.2.1", "192.0.2.2"},
		{"2001:db8:1::1", "2001:db8:1::2"},
	} {
		at := netip.AddrPortFrom(netip.MustParseAddr(tc.server), 2222).String()
		if c, err := dialTCP(cli, at); !isTimeout(err) {
			closeIf(c)
			t.Errorf("connect to %s before Allow: error = %v, want a timeout", at, err)
		}
		allow(t, tb, tc.client, Service{Endpoints: []Endpoint{{inet.TCP, 2222}}}, time.Minute)
		c, err := dialTCP(cli, at)
		if err != nil {
			t.Errorf("connect to %s after Allow: %v", at, err)
			continue
		}
		if err := echo(c, "hello"); err != nil {
			t.Errorf("echo from %s: %v", at, err)
		}
		c.Close()
	}
}
