package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/totpseq"
)

func TestParseLinkStats(t *testing.T) {
	out := `[{"ifindex":2,"ifname":"tkatk","stats64":{"rx":{"bytes":600,"packets":10,"errors":0,"dropped":2},"tx":{"bytes":0,"packets":3}}}]`
	got, err := parseLinkStats(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (linkStats{RxPackets: 10, RxDropped: 2, TxPackets: 3}); got != want {
		t.Errorf("parseLinkStats = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "[]", "[{},{}]", "{"} {
		if _, err := parseLinkStats(bad); err == nil {
			t.Errorf("parseLinkStats(%q) = nil error", bad)
		}
	}
}

// TestFloodOnTheWire sends the harness's flood configurations with the
// real trafgen over a veth pair and checks every frame: the SYNs of the
// capture flood land in the knock range from the benchmarking range, and
// the memory flood's sources are all distinct and hit only the anchor
// ports given. It also checks the counter reading and the knock/probe
// functions against a listener.
func TestFloodOnTheWire(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTool(t, "trafgen")
	a, b := nstest.New(t), nstest.New(t)
	aIf, bIf := nstest.Link(t, a, b, []string{"192.0.2.2/24", "2001:db8:1::2/64"}, []string{"192.0.2.1/24", "2001:db8:1::1/64"})
	an, bn := &netns{Name: a.Name, Path: a.Path}, &netns{Name: b.Name, Path: b.Path}
	mac, err := bn.mac(bIf)
	if err != nil {
		t.Fatal(err)
	}

	// A packet socket on b's end records what arrives.
	var fd int
	if err := bn.do(func() error {
		ifi, err := net.InterfaceByName(bIf)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	drain := func() (frames []gopacket.Packet) {
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				return frames
			}
			if err != nil {
				t.Fatal(err)
			}
			p := gopacket.NewPacket(append([]byte(nil), buf[:n]...), layers.LayerTypeEthernet, gopacket.Default)
			if p.Layer(layers.LayerTypeTCP) != nil {
				frames = append(frames, p)
			}
		}
	}

	knockRange := totpseq.Range{Lo: 10000, Hi: 32767}
	before, err := bn.stats(bIf)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	fl, err := startFlood(context.Background(), floodSpec{NS: an, Ifname: aIf, Dir: t.TempDir(), Count: n, Limit: 10 * time.Second,
		Packets: []FloodPacket{{DstMAC: mac, Dst: netip.MustParseAddr("192.0.2.1"), Proto: inet.TCP,
			Src: netip.MustParseAddr("198.18.0.0"), RandomSrcBits: 16, Ports: knockRange}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.wait(); err != nil {
		t.Fatal(err)
	}
	frames := drain()
	if len(frames) != n {
		t.Fatalf("capture flood: %d TCP frames arrived, want %d", len(frames), n)
	}
	for _, p := range frames {
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		if !netip.MustParsePrefix("198.18.0.0/16").Contains(src) || !tcp.SYN || tcp.ACK || !knockRange.Contains(uint16(tcp.DstPort)) {
			t.Errorf("capture flood frame: %v -> port %d SYN %v ACK %v; want a SYN from 198.18.0.0/16 into %v", src, tcp.DstPort, tcp.SYN, tcp.ACK, knockRange)
		}
	}
	after, err := bn.stats(bIf)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.RxPackets - before.RxPackets; got < n {
		t.Errorf("rx counter grew by %d, want at least %d", got, n)
	}

	// The memory flood: two anchors, counting sources.
	anchors := []uint16{12345, 23456}
	var pkts []FloodPacket
	for j, port := range anchors {
		pkts = append(pkts, FloodPacket{DstMAC: mac, Dst: netip.MustParseAddr("2001:db8:1::1"), Proto: inet.TCP,
			Src: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xf0, byte(j), 0, 7}), CountSrc: true,
			Ports: totpseq.Range{Lo: port, Hi: port}})
	}
	fl, err = startFlood(context.Background(), floodSpec{NS: an, Ifname: aIf, Dir: t.TempDir(), Count: n, Limit: 10 * time.Second, Packets: pkts})
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.wait(); err != nil {
		t.Fatal(err)
	}
	frames = drain()
	if len(frames) != n {
		t.Fatalf("memory flood: %d TCP frames arrived, want %d", len(frames), n)
	}
	seen := map[netip.Addr]bool{}
	for _, p := range frames {
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		if seen[src] {
			t.Errorf("memory flood: source %v twice", src)
		}
		seen[src] = true
		if !contains(anchors, uint16(tcp.DstPort)) || !tcp.SYN {
			t.Errorf("memory flood frame to port %d, want a SYN to one of %v", tcp.DstPort, anchors)
		}
	}

	// Knocks and a probe: the knocks arrive in order from the chosen
	// source, and the probe connects to a listener at once.
	ports := []uint16{11111, 22222, 12121}
	src := netip.MustParseAddr("192.0.2.2")
	if err := an.do(func() error {
		_, err := sendKnocks(src, netip.MustParseAddr("192.0.2.1"), ports, time.Millisecond)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got []uint16
	for _, p := range drain() {
		tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp.SYN && !tcp.ACK {
			got = append(got, uint16(tcp.DstPort))
		}
	}
	if len(got) != len(ports) || got[0] != ports[0] || got[1] != ports[1] || got[2] != ports[2] {
		t.Errorf("knocks arrived at %v, want %v in order", got, ports)
	}
	var ln net.Listener
	if err := bn.do(func() error {
		var err error
		ln, err = net.Listen("tcp", "192.0.2.1:2222")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := an.do(func() error {
		r, err := probe(src, netip.MustParseAddrPort("192.0.2.1:2222"), time.Now(), time.Millisecond, time.Second)
		if err != nil {
			return err
		}
		if r.Tries != 1 || r.Connected > 500*time.Millisecond || r.Polled > r.Connected {
			t.Errorf("probe of an open port: %+v; want 1 try, polled before connected", r)
		}
		// A probe that starts far behind its schedule still waits for
		// each answer instead of giving up on every try.
		r, err = probe(src, netip.MustParseAddrPort("192.0.2.1:2222"), time.Now().Add(-time.Second), 100*time.Microsecond, 2*time.Second)
		if err != nil || r.Tries != 1 {
			t.Errorf("late probe of an open port: %d tries, %v; want 1 try, no error", r.Tries, err)
		}
		_, err = probe(src, netip.MustParseAddrPort("192.0.2.1:2223"), time.Now(), 10*time.Millisecond, 50*time.Millisecond)
		if !errors.Is(err, errNotOpened) {
			t.Errorf("probe of a closed port = %v, want errNotOpened", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestFloodResultPrefilter checks how a flood's result counts the knocks
// the daemon's prefilter dropped in the kernel: processed with the
// daemon's own, and shown apart; without a prefilter (-1) the daemon's
// alone.
func TestFloodResultPrefilter(t *testing.T) {
	r := floodResult{Rate: 250000, Offered: 1000, Processed: 20, Prefilt: 975, Drops: 0, CPU: 0.05}
	if got := r.processedRatio(); got != 0.995 {
		t.Errorf("processed ratio %v, want 0.995 (prefilter 975 + daemon 20 of 1000)", got)
	}
	res := r.result()
	for _, want := range []string{"processed 99.50 %", "97.50 % in the kernel by the prefilter", "2.00 % by the daemon"} {
		if !strings.Contains(res, want) {
			t.Errorf("result %q lacks %q", res, want)
		}
	}
	r.Prefilt = -1
	if got := r.processedRatio(); got != 0.02 {
		t.Errorf("without a prefilter: processed ratio %v, want 0.02", got)
	}
	if res := r.result(); strings.Contains(res, "prefilter") {
		t.Errorf("without a prefilter the result %q names one", res)
	}
}
