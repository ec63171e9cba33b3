package nft

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// TestTrafficLoopback: the host talking to itself (over lo, to 127.0.0.1,
// ::1 or its own address) reaches a protected port without a grant by
// default, and needs one with ProtectLoopback.
func TestTrafficLoopback(t *testing.T) {
	srv, cli := newNS(t), newNS(t)
	nstest.Link(t, srv, cli, []string{"192.0.2.1/24"}, []string{"192.0.2.2/24"})
	echoTCP(t, srv, 2222)
	cfg := Config{Protected: []Endpoint{{inet.TCP, 2222}}}
	tb := open(t, srv, cfg)
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	local := []string{"127.0.0.1:2222", "[::1]:2222", "192.0.2.1:2222"}
	for _, addr := range local {
		c, err := dialTCP(srv, addr)
		if err != nil {
			t.Errorf("from the host itself to %s: %v, want a connection (loopback is exempt)", addr, err)
			continue
		}
		c.Close()
	}
	if c, err := dialTCP(cli, "192.0.2.1:2222"); !isTimeout(err) {
		closeIf(c)
		t.Errorf("from another host: error = %v, want a timeout (dropped)", err)
	}

	cfg.ProtectLoopback = true
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for _, addr := range local {
		if c, err := dialTCP(srv, addr); !isTimeout(err) {
			closeIf(c)
			t.Errorf("ProtectLoopback: from the host itself to %s: error = %v, want a timeout (dropped)", addr, err)
		}
	}
	if err := tb.Allow(netip.MustParseAddr("127.0.0.1"), Service{Name: "ssh", Endpoints: cfg.Protected}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c, err := dialTCP(srv, "127.0.0.1:2222")
	if err != nil {
		t.Errorf("ProtectLoopback, with a grant for 127.0.0.1: %v", err)
	} else {
		c.Close()
	}
}

// TestTrafficDNAT: a port the host forwards by DNAT to a "container" (a
// namespace behind it, as Docker -p 8080:80 does) is closed to strangers and
// opened by a grant for that source only; the container's own port is not
// the host's business.
func TestTrafficDNAT(t *testing.T) {
	srv, cli, ctr := newNS(t), newNS(t), newNS(t)
	nstest.Link(t, srv, cli, []string{"192.0.2.1/24"}, []string{"192.0.2.2/24", "192.0.2.3/24"})
	// nstest.Link names the ends after the namespaces: the server's second
	// link gets names of its own.
	srvIf, ctrIf := "c"+ctr.Name[2:], "d"+ctr.Name[2:]
	srv.MustRun(t, "ip", "link", "add", srvIf, "type", "veth", "peer", "name", ctrIf, "netns", ctr.Name)
	srv.MustRun(t, "ip", "addr", "add", "10.99.0.1/24", "dev", srvIf)
	srv.MustRun(t, "ip", "link", "set", srvIf, "up")
	ctr.MustRun(t, "ip", "addr", "add", "10.99.0.2/24", "dev", ctrIf)
	ctr.MustRun(t, "ip", "link", "set", ctrIf, "up")
	ctr.MustRun(t, "ip", "route", "add", "default", "via", "10.99.0.1")
	srv.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	srv.MustRun(t, "nft", "-f", writeTemp(t, `table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 dnat to 10.99.0.2:80
	}
}
`))
	echoTCP(t, ctr, 80)
	cfg := Config{Protected: []Endpoint{{inet.TCP, 8080}}}
	tb := open(t, srv, cfg)
	if err := tb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	// dialFrom connects from the client with source address src.
	dialFrom := func(src string) error {
		return cli.Do(func() error {
			d := net.Dialer{Timeout: dialTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err := d.Dial("tcp", "192.0.2.1:8080")
			if err != nil {
				return err
			}
			defer c.Close()
			return echo(c, "forwarded")
		})
	}
	if err := dialFrom("192.0.2.2"); !isTimeout(err) {
		t.Errorf("to the forwarded port before a grant: error = %v, want a timeout (dropped)", err)

	}
	if err := tb.Allow(netip.MustParseAddr("192.0.2.2"), Service{Name: "web", Endpoints: cfg.Protected}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := dialFrom("192.0.2.2"); err != nil {
		t.Errorf("to the forwarded port with a grant: %v", err)
	}
	if err := dialFrom("192.0.2.3"); !isTimeout(err) {
		t.Errorf("to the forwarded port from another source: error = %v, want a timeout (dropped)", err)
	}
}
