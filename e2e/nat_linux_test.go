package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"

	"github.com/pion/stun/v3"
)

// Addresses of the NAT topology. The public side is the server's link to
// the last router (203.0.113.0/24) and to the stranger (198.51.100.0/24);
// the STUN server listens on a second address of the server's namespace.
// The client is on a home LAN (192.168.77.0/24); with carrier-grade NAT,
// the home router's WAN side is in 100.64.5.0/24 behind the carrier's
// router.
var (
	natServer   = netip.MustParseAddr("203.0.113.1")
	natPublic   = netip.MustParseAddr("203.0.113.2") // the last router's public address: what the server sees
	natSTUN     = netip.MustParseAddrPort("203.0.113.3:3478")
	natHome     = netip.MustParseAddr("192.168.77.2") // the client's own address
	natStranger = netip.MustParseAddr("198.51.100.2")
)

// vethLink joins a and b with a veth pair named "n"+tag+a's and b's
// random part, so a namespace may have several links; it assigns the
// addresses and brings both ends up.
func vethLink(t *testing.T, a, b *nstest.NS, tag string, aAddrs, bAddrs []string) (aIf, bIf string) {
	t.Helper()
	aIf, bIf = "n"+tag+a.Name[2:], "n"+tag+b.Name[2:]
	a.MustRun(t, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, side := range []struct {
		ns    *nstest.NS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		for _, addr := range side.addrs {
			side.ns.MustRun(t, "ip", "addr", "add", addr, "dev", side.ifc)
		}
		side.ns.MustRun(t, "ip", "link", "set", side.ifc, "up")
	}
	return aIf, bIf
}

// masquerade makes ns a NAT router: it forwards, and rewrites the source
// of everything that leaves through wan to wan's address (nftables
// masquerade, as home routers and carriers do).
func masquerade(t *testing.T, ns *nstest.NS, wan string) {
	t.Helper()
	ns.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	rules := fmt.Sprintf("table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname %q masquerade\n }\n}\n", wan)
	cmd := ns.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft masquerade in %s: %v: %s", ns.Name, err, out)
	}
}

// startSTUN runs coturn's turnserver as a plain STUN server in ns on
// addr: no configuration file (-n), in the foreground, its database and
// pid file in the test's directory. It is stopped at cleanup. It returns
// once the server answers a binding request from inside ns.
func startSTUN(t *testing.T, ns *nstest.NS, dir string, addr netip.AddrPort, from netip.Addr) {
	t.Helper()
	nstest.RequireTool(t, "turnserver")
	log, err := os.Create(filepath.Join(dir, "turnserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(context.Background(), "turnserver", "-n", "--stun-only",
		"--listening-ip", addr.Addr().String(), "--listening-port", fmt.Sprint(addr.Port()),
		"--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--no-software-attribute",
		"--log-file", "stdout", "--simple-log",
		"--userdb", filepath.Join(dir, "turndb"), "--pidfile", filepath.Join(dir, "turnserver.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start turnserver: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("turnserver log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := stunProbe(ns, addr, from)
		if err == nil {
			if got != from {
				t.Fatalf("turnserver maps %v to %v, want itself", from, got)
			}
			return
		}
		select {
		case <-done:
			t.Fatalf("turnserver exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("turnserver does not answer on %v: %v", addr, err)
		}
	}
}

// stunProbe sends one binding request from inside ns, from the address
// from, and returns the mapped address of the answer. (client.STUN asks
// from goroutines of its own, which do not run inside ns.)
func stunProbe(ns *nstest.NS, server netip.AddrPort, from netip.Addr) (netip.Addr, error) {
	var mapped netip.Addr
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)))
		if err != nil {
			return err
		}
		defer c.Close()
		req, err := stun.Build(stun.TransactionID, stun.BindingRequest)
		if err != nil {
			return err
		}
		if _, err := c.WriteToUDPAddrPort(req.Raw, server); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		resp := &stun.Message{Raw: buf[:n]}
		if err := resp.Decode(); err != nil {
			return err
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(resp); err != nil {
			return err
		}
		a, _ := netip.AddrFromSlice(xa.IP)
		mapped = a.Unmap()
		return nil
	})
	return mapped, err
}

// newNATEnv builds the NAT world: the server (with the STUN server) and
// the stranger on the public side, the client behind a home router and,
// with cgn, also behind a carrier's router.
func newNATEnv(t *testing.T, cgn, withSTUN bool) *env {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "nft")
	e := &env{
		t: t, fam: v4, dir: t.TempDir(),
		server: nstest.New(t), client: nstest.New(t), stranger: nstest.New(t),
		secrets:    new([]string),
		serverAddr: natServer, clientAddr: natPublic, strangerAddr: natStranger,
	}
	home := nstest.New(t)
	// Public side.
	e.srvToStranger, e.strangerIf = vethLink(t, e.server, e.stranger, "x", []string{"198.51.100.1/24"}, []string{"198.51.100.2/24"})
	e.stranger.MustRun(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	e.server.MustRun(t, "ip", "addr", "add", natSTUN.Addr().String()+"/32", "dev", "lo")
	// The home LAN.
	_, e.clientIf = vethLink(t, home, e.client, "l", []string{"192.168.77.1/24"}, []string{"192.168.77.2/24"})
	e.client.MustRun(t, "ip", "route", "add", "default", "via", "192.168.77.1")
	if cgn {
		carrier := nstest.New(t)
		homeWAN, _ := vethLink(t, home, carrier, "w", []string{"100.64.5.2/24"}, []string{"100.64.5.1/24"})
		home.MustRun(t, "ip", "route", "add", "default", "via", "100.64.5.1")
		masquerade(t, home, homeWAN)
		carrierWAN, srvIf := vethLink(t, carrier, e.server, "p", []string{"203.0.113.2/24"}, []string{"203.0.113.1/24"})
		carrier.MustRun(t, "ip", "route", "add", "default", "via", "203.0.113.1")
		masquerade(t, carrier, carrierWAN)
		e.srvToClient = srvIf
	} else {
		homeWAN, srvIf := vethLink(t, home, e.server, "p", []string{"203.0.113.2/24"}, []string{"203.0.113.1/24"})
		home.MustRun(t, "ip", "route", "add", "default", "via", "203.0.113.1")
		masquerade(t, home, homeWAN)
		e.srvToClient = srvIf
	}
	if withSTUN {
		startSTUN(t, e.server, e.dir, natSTUN, natServer)
	}
	return e
}

// TestNAT: a client behind one NAT router (a home network) and behind two
// (carrier-grade NAT, 100.64.0.0/10, then the home router) opens the door
// with the STUN server named in its enrollment (stun=, from tknockd's
// [enroll] stun) and with --stun; without a STUN server it says how to
// fix it; the stranger stays locked out.
func TestNAT(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cgn  bool
	}{{"home router", false}, {"carrier-grade NAT and home router", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newNATEnv(t, tc.cgn, true)
			e.serve(sshPort)
			e.serve(webPort)
			cfg := config{Services: map[string][]string{"ssh": {"tcp/2222"}, "web": {"tcp/8080"}}}.toml(filepath.Join(e.dir, "etc", "users"))
			cfg = strings.Replace(cfg, "\n[enroll]\n", fmt.Sprintf("\n[enroll]\nstun = [%q]\n", natSTUN), 1)
			configPath := e.writeFile("etc/tknockd.toml", cfg, 0o600)
			if err := os.MkdirAll(filepath.Join(e.dir, "etc", "users"), 0o700); err != nil {
				t.Fatal(err)
			}
			alice := e.enrollByDaemon(configPath, "alice")
			if len(alice.enr.STUN) != 1 || alice.enr.STUN[0] != natSTUN.String() {
				t.Fatalf("tknockd enroll wrote STUN servers %q, want [%v] from [enroll] stun", alice.enr.STUN, natSTUN)
			}
			bob := e.enroll("bob", params{Proto: inet.TCP, Services: []string{"web"}}) // no stun=
			d := e.startDaemon(configPath)

			e.mustRefuse(e.client, sshPort)
			e.mustRefuse(e.stranger, sshPort)

			// Without a STUN server the client cannot know its public
			// address: it sends nothing and says how to fix it.
			_, errOut, err := e.tknockResult("knock", "--enrollment", bob.clientFile, natServer.String())
			if err == nil || !strings.Contains(errOut, "192.168.77.2 towards 203.0.113.1 is private") || !strings.Contains(errOut, "--stun HOST:PORT") {
				t.Errorf("knock behind NAT without STUN: %v, stderr %q; want an error naming --stun", err, errOut)
			}

			// stun= in the enrollment.
			m := d.mark()
			_, errOut, err = e.tknockResult("-v", "knock", "--enrollment", alice.clientFile)
			if err != nil {
				t.Fatalf("knock with stun= in the enrollment: %v\n%s", err, errOut)
			}
			if !strings.Contains(errOut, "source="+natPublic.String()) || !strings.Contains(errOut, `source_from="stun server `+natSTUN.String()+`"`) {
				t.Errorf("-v does not show the STUN source %v:\n%s", natPublic, errOut)
			}
			open, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh"))
			if err != nil {
				t.Fatal(err)
			}
			if got := open.str("src"); got != natPublic.String() {
				t.Errorf("opening for src %s, want the router's public %v", got, natPublic)
			}
			e.mustConnect(e.client, sshPort)
			e.mustRefuse(e.stranger, sshPort)

			// --stun, with the cached answer gone so the server is asked.
			os.Remove(filepath.Join(e.dir, "client-cache", client.NATCacheFile))
			m = d.mark()
			_, errOut, err = e.tknockResult("-v", "knock", "--enrollment", bob.clientFile, "--stun", natSTUN.String(), natServer.String())
			if err != nil {
				t.Fatalf("knock --stun: %v\n%s", err, errOut)
			}
			if !strings.Contains(errOut, `source_from="stun server `+natSTUN.String()+`"`) {
				t.Errorf("-v does not show that --stun's server was asked:\n%s", errOut)
			}
			if _, err := d.waitFrom(m, 5*time.Second, "an opening for bob", isOpen("bob", "web")); err != nil {
				t.Fatal(err)
			}
			e.mustConnect(e.client, webPort)
			e.mustRefuse(e.stranger, webPort)
			e.mustRefuse(e.stranger, sshPort)
		})
	}
}

// TestNATWithoutSTUNOpensNothing is the problem STUN solves: a knock bound
// to the client's own private address (--source) reaches the server from
// the router's address and opens nothing.
func TestNATWithoutSTUNOpensNothing(t *testing.T) {
	t.Parallel()
	e := newNATEnv(t, false, false)
	e.serve(sshPort)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	d := e.startDaemon(e.writeConfig(config{}))
	m := d.mark()
	e.tknock("knock", "--enrollment", alice.clientFile, "--source", natHome.String(), natServer.String())
	time.Sleep(time.Second)
	if n := len(d.since(m, isEvent("open"))); n != 0 {
		t.Errorf("%d openings for a knock bound to the private address, want none", n)
	}
	e.mustRefuse(e.client, sshPort)
}
