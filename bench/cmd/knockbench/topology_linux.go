package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// The test network: the daemon's namespace (srv) has two veth links, one to
// the legitimate client (cli) and one to the flooder (atk), so the flood and
// the client's knocks are counted on different interfaces. The server has
// no default route: its answers to spoofed sources (RSTs) go nowhere.
//
//	cli tksrv 192.0.2.2/24 2001:db8:1::2/64  <->  tkcli 192.0.2.1/24 2001:db8:1::1/64      srv
//	atk tksrv 198.51.100.2/24 2001:db8:2::2  <->  tkatk 198.51.100.1/24 2001:db8:2::1/64   srv
const (
	ifSrvCli = "tkcli" // in srv, towards the client
	ifSrvAtk = "tkatk" // in srv, towards the flooder
	ifPeer   = "tksrv" // in cli and in atk, towards the server
)

var (
	srvCli4 = netip.MustParseAddr("192.0.2.1")
	srvCli6 = netip.MustParseAddr("2001:db8:1::1")
	srvAtk4 = netip.MustParseAddr("198.51.100.1")
	srvAtk6 = netip.MustParseAddr("2001:db8:2::1")
)

// Client source addresses: every measured knock comes from an address that
// has never knocked before, so no earlier grant (which lives for open_for)
// and no replay record can change the outcome. 192.0.2.10-254 and
// 2001:db8:1::1:0/112 are added to the client's link.
const (
	pool4First = 10
	pool4Last  = 254
	pool6Size  = 128
)

type topology struct {
	srv, cli, atk *netns
	srvAtkMAC     net.HardwareAddr // destination MAC of flood frames
	pool          []netip.Addr     // fresh client addresses; a used one is zeroed
}

// newTopology creates the three namespaces and both links. On error it
// removes what it created.
func newTopology() (_ *topology, err error) {
	prefix, err := randomPrefix()
	if err != nil {
		return nil, err
	}
	t := &topology{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, ns := range []struct {
		p    **netns
		role string
	}{{&t.srv, "s"}, {&t.cli, "c"}, {&t.atk, "a"}} {
		if *ns.p, err = newNetns(prefix, ns.role); err != nil {
			return nil, err
		}
		if err = (*ns.p).sysctlDAD(); err != nil {
			return nil, err
		}
	}
	links := []struct {
		peer         *netns
		srvIf        string
		srvA, peerA  []string
		peerPoolNets bool
	}{
		{t.cli, ifSrvCli, []string{"192.0.2.1/24", "2001:db8:1::1/64"}, []string{"192.0.2.2/24", "2001:db8:1::2/64"}, true},
		{t.atk, ifSrvAtk, []string{"198.51.100.1/24", "2001:db8:2::1/64"}, []string{"198.51.100.2/24", "2001:db8:2::2/64"}, false},
	}
	for _, l := range links {
		if _, err = t.srv.run("ip", "link", "add", l.srvIf, "type", "veth", "peer", "name", ifPeer, "netns", l.peer.Name); err != nil {
			return nil, err
		}
		var srvLines, peerLines []string
		for _, a := range l.srvA {
			srvLines = append(srvLines, fmt.Sprintf("addr add %s dev %s nodad", a, l.srvIf))
		}
		for _, a := range l.peerA {
			peerLines = append(peerLines, fmt.Sprintf("addr add %s dev %s nodad", a, ifPeer))
		}
		if l.peerPoolNets {
			for i := pool4First; i <= pool4Last; i++ {
				a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
				peerLines = append(peerLines, fmt.Sprintf("addr add %s/32 dev %s", a, ifPeer))
				t.pool = append(t.pool, a)
			}
			for i := range pool6Size {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 13: 1, 14: byte(i >> 8), 15: byte(i)})
				peerLines = append(peerLines, fmt.Sprintf("addr add %s/128 dev %s nodad", a, ifPeer))
				t.pool = append(t.pool, a)
			}
		}
		srvLines = append(srvLines, fmt.Sprintf("link set %s up", l.srvIf))
		peerLines = append(peerLines, fmt.Sprintf("link set %s up", ifPeer))
		if err = t.srv.ipBatch(srvLines); err != nil {
			return nil, err
		}
		if err = l.peer.ipBatch(peerLines); err != nil {
			return nil, err
		}
	}
	if t.srvAtkMAC, err = t.srv.mac(ifSrvAtk); err != nil {
		return nil, err
	}
	return t, nil
}

// source returns a client address that has not knocked yet: IPv4 if v4,
// else IPv6.
func (t *topology) source(v4 bool) (netip.Addr, error) {
	for i, a := range t.pool {
		if a.IsValid() && a.Is4() == v4 {
			t.pool[i] = netip.Addr{}
			return a, nil
		}
	}
	fam := "IPv6"
	if v4 {
		fam = "IPv4"
	}
	return netip.Addr{}, fmt.Errorf("the client's pool of fresh %s source addresses is used up", fam)
}

// close deletes the namespaces (their links go with them).
func (t *topology) close() error {
	var errs []error
	for _, ns := range []*netns{t.srv, t.cli, t.atk} {
		if ns != nil {
			errs = append(errs, ns.del())
		}
	}
	return errors.Join(errs...)
}
