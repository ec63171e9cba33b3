package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
)

var sysRanges = []inet.Range{
	{Proto: inet.TCP, Lo: 40000, Hi: 40999},
	{Proto: inet.UDP, Lo: 50000, Hi: 50999},
}

// TestCaptureSystem sends knocks and non-knocks from a client namespace to
// a capture on the server's veth: SYN, UDP, IPv6, VLAN-tagged (the tag
// taken out of the frame by the receiving kernel, and QinQ with an inline
// inner tag) knocks arrive decoded, in order; ACKs, SYN-ACKs,
// fragments and ports outside the ranges never reach user space. An
// nftables rule drops every knock port, and the capture still sees the
// knocks.
func TestCaptureSystem(t *testing.T) {
	nstest.RequireTool(t, "nft")
	tb := newTestbed(t)
	tb.srv.MustRun(t, "nft", "add table inet tkcap")
	tb.srv.MustRun(t, "nft", "add chain inet tkcap in { type filter hook input priority 0; policy accept; }")
	tb.srv.MustRun(t, "nft", "add rule inet tkcap in meta l4proto { tcp, udp } th dport { 40000-40999, 50000-50999 } counter drop")

	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})
	if c.Link() != listener.LinkEthernet {
		t.Fatalf("capture on veth: link %v, want ethernet", c.Link())
	}
	ch := collect(c, sysRanges)

	raw := func(v listenertest.Packet) []byte {
		v.DstMAC = tb.srvMAC
		return v.Frame(t).Data
	}
	cli4 := listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1"}
	cli6 := listenertest.Packet{Src: "2001:db8:1::2", Dst: "2001:db8:1::1"}
	var want []listener.Knock
	knock := func(src string, proto inet.Proto, port uint16) {
		want = append(want, listener.Knock{Src: addr(src), Proto: proto, Port: port})
	}

	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	knock("192.0.2.2", udp, 50001)
	sendSYN(t, tb.cli, "192.0.2.1", 40001)
	knock("192.0.2.2", tcp, 40001)
	sendUDP(t, tb.cli, "2001:db8:1::1", 50002)
	knock("2001:db8:1::2", udp, 50002)
	sendSYN(t, tb.cli, "2001:db8:1::1", 40002)
	knock("2001:db8:1::2", tcp, 40002)

	// Not knocks: none of these may reach user space.
	sendUDP(t, tb.cli, "192.0.2.1", 51000)
	sendUDP(t, tb.cli, "2001:db8:1::1", 49999)
	sendSYN(t, tb.cli, "192.0.2.1", 39999)
	sendRaw(t, tb.cli, tb.cliIf,
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.ACK, v.DstPort = tcp, true, 40004 })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.SYN, v.ACK, v.DstPort = tcp, true, true, 40005 })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.RST, v.DstPort = tcp, true, 40006 })),
		raw(listenertest.With(cli6, func(v *listenertest.Packet) { v.Proto, v.ACK, v.DstPort = tcp, true, 40007 })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.FragOff = udp, 50008, 185 })),
		raw(listenertest.With(cli6, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.HopByHop = udp, 50009, true })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort = udp, true, 40010 })), // UDP to the TCP range
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort = tcp, true, 50011 })), // SYN to the UDP range
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { // the kernel takes out one tag; three inline are deeper than the filter looks
			v.Proto, v.DstPort, v.Tags = udp, 50012, []layers.EthernetType{0x88a8, 0x8100, 0x8100, 0x8100}
		})),
	)

	// Knocks in crafted frames: VLAN-tagged (the receiving kernel moves the
	// outer tag out of the frame into the ring's metadata), QinQ (the inner
	// tag stays inline), a first fragment, a SYN with IP options.
	sendRaw(t, tb.cli, tb.cliIf,
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.Tags = udp, 50003, []layers.EthernetType{0x8100} })),
		raw(listenertest.With(cli6, func(v *listenertest.Packet) {
			v.Proto, v.SYN, v.DstPort, v.Tags = tcp, true, 40003, []layers.EthernetType{0x8100}
		})),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.Tags = udp, 50004, []layers.EthernetType{0x88a8} })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) {
			v.Proto, v.DstPort, v.Tags = udp, 50013, []layers.EthernetType{0x88a8, 0x8100}
		})),
		raw(listenertest.With(cli6, func(v *listenertest.Packet) {
			v.Proto, v.SYN, v.DstPort, v.Tags = tcp, true, 40014, []layers.EthernetType{0x88a8, 0x8100}
		})),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.MF = udp, 50015, true })),
		raw(listenertest.With(cli4, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort, v.IPOptions = tcp, true, 40016, true })),
	)
	knock("192.0.2.2", udp, 50003)
	knock("2001:db8:1::2", tcp, 40003)
	knock("192.0.2.2", udp, 50004)
	knock("192.0.2.2", udp, 50013)
	knock("2001:db8:1::2", tcp, 40014)
	knock("192.0.2.2", udp, 50015)
	knock("192.0.2.2", tcp, 40016)

	sendUDP(t, tb.cli, "192.0.2.1", 50999)
	knock("192.0.2.2", udp, 50999)

	rs := until(t, ch, 50999)
	for _, r := range rs {
		// The single tags were taken out of the frame; QinQ keeps its inner
		// tag inline.
		et := uint16(r.frame.Data[12])<<8 | uint16(r.frame.Data[13])
		wantET := map[uint16]uint16{50003: 0x0800, 40003: 0x86dd, 50004: 0x0800, 50013: 0x8100, 40014: 0x8100}[r.knock.Port]
		if wantET != 0 && et != wantET {
			t.Errorf("knock to %d: ethertype in the ring %#04x, want %#04x", r.knock.Port, et, wantET)
		}
	}
	got := knocks(t, rs)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("knocks (-want +got):\n%s", diff)
	}
	for _, r := range until2(ch) {
		t.Errorf("frame after the sentinel: %+v", r)
	}

	st := c.Stats()
	if st.Packets != uint64(len(want)) || st.Read != uint64(len(want)) || st.Drops != 0 || st.Outgoing != 0 {
		t.Errorf("Stats = %+v, want %d packets passed the filter and read, no drops, no outgoing", st, len(want))
	}

	// nftables dropped the knocks the kernel stack received.
	out := tb.srv.MustRun(t, "nft", "list", "chain", "inet", "tkcap", "in")
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 5 {
		t.Errorf("nftables dropped %d packets to knock ports, want at least 5 (the knocks on the untagged link):\n%s", n, out)
	}
}

// until2 drains what arrives in a short while after the sentinel.
func until2(ch <-chan result) []result {
	var rs []result
	timeout := time.After(50 * time.Millisecond)
	for {
		select {
		case r, open := <-ch:
			if !open {
				return rs
			}
			rs = append(rs, r)
		case <-timeout:
			return rs
		}
	}
}

// TestCaptureAny captures on all interfaces: frames start at the IP header
// and carry the interface index.
func TestCaptureAny(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, Config{Interface: "any", Ranges: sysRanges})
	if c.Link() != listener.LinkIP {
		t.Fatalf("capture on any: link %v, want ip", c.Link())
	}
	ch := collect(c, sysRanges)
	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	sendSYN(t, tb.cli, "2001:db8:1::1", 40001)
	sendUDP(t, tb.cli, "192.0.2.1", 51001) // outside
	sendUDP(t, tb.cli, "2001:db8:1::1", 50999)
	rs := until(t, ch, 50999)
	want := []listener.Knock{
		{Src: addr("192.0.2.2"), Proto: udp, Port: 50001},
		{Src: addr("2001:db8:1::2"), Proto: tcp, Port: 40001},
		{Src: addr("2001:db8:1::2"), Proto: udp, Port: 50999},
	}
	if diff := cmp.Diff(want, knocks(t, rs), cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("knocks (-want +got):\n%s", diff)
	}
	for _, r := range rs {
		if r.frame.Link != listener.LinkIP || r.frame.Ifindex != tb.srvIndex {
			t.Errorf("frame link %v ifindex %d, want ip on %d", r.frame.Link, r.frame.Ifindex, tb.srvIndex)
		}
	}
}

// TestCaptureLoopback checks that a knock on lo is seen once: the outgoing
// copy is left out.
func TestCaptureLoopback(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	c := listenIn(t, ns, Config{Interface: "lo", Ranges: sysRanges})
	if c.Link() != listener.LinkEthernet {
		t.Fatalf("capture on lo: link %v, want ethernet", c.Link())
	}
	// Knocks from loopback addresses never count (the decoder's
	// usableSource; the kernel filters pass them, which collect would
	// report): the knocks on lo come from the host's other addresses.
	ns.MustRun(t, "ip", "addr", "add", "192.0.2.9/32", "dev", "lo")
	ns.MustRun(t, "ip", "-6", "addr", "add", "2001:db8::9/128", "dev", "lo", "nodad")
	ch := collect(c, sysRanges)
	sendUDP(t, ns, "192.0.2.9", 50001)
	sendUDP(t, ns, "2001:db8::9", 50002)
	sendUDP(t, ns, "192.0.2.9", 50999)
	want := []listener.Knock{
		{Src: addr("192.0.2.9"), Proto: udp, Port: 50001},
		{Src: addr("2001:db8::9"), Proto: udp, Port: 50002},
		{Src: addr("192.0.2.9"), Proto: udp, Port: 50999},
	}
	got := knocks(t, until(t, ch, 50999))
	got = append(got, knocks(t, until2(ch))...)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("knocks on lo (-want +got):\n%s", diff)
	}
}

// TestCaptureSetRanges replaces the kernel filter while a read is pending.
func TestCaptureSetRanges(t *testing.T) {
	tb := newTestbed(t)
	first := []inet.Range{{Proto: inet.UDP, Lo: 50000, Hi: 50000}}
	second := []inet.Range{{Proto: inet.UDP, Lo: 50001, Hi: 50002}}
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: first})
	all := append(append([]inet.Range(nil), first...), second...)
	ch := collect(c, all)

	sendUDP(t, tb.cli, "192.0.2.1", 50001) // not in the first ranges
	sendUDP(t, tb.cli, "192.0.2.1", 50000)
	if got := knocks(t, until(t, ch, 50000)); len(got) != 1 {
		t.Errorf("before SetRanges: knocks %v, want only the one to 50000", got)
	}
	if err := c.SetRanges(second); err != nil {
		t.Fatal(err)
	}
	sendUDP(t, tb.cli, "192.0.2.1", 50000) // no longer a knock port
	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	sendUDP(t, tb.cli, "192.0.2.1", 50002)
	got := knocks(t, until(t, ch, 50002))
	want := []listener.Knock{{Src: addr("192.0.2.2"), Proto: udp, Port: 50001}, {Src: addr("192.0.2.2"), Proto: udp, Port: 50002}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("after SetRanges (-want +got):\n%s", diff)
	}

	if err := c.SetRanges([]inet.Range{{Proto: inet.UDP, Lo: 2, Hi: 1}}); err == nil || !strings.Contains(err.Error(), "lo > hi") {
		t.Errorf("SetRanges(2-1) = %v, want an error about lo > hi", err)
	}
}

// TestCaptureClose checks that Close unblocks a pending ReadFrame at once,
// and that a frame read before Close stays readable after it.
func TestCaptureClose(t *testing.T) {
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})

	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	f, err := c.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	before := string(f.Data)

	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadFrame()
		errc <- err
	}()
	statsDone := make(chan struct{})
	go func() { // listener.Stats and SetRanges from another goroutine, racing Close
		defer close(statsDone)
		for range 200 {
			c.Stats()
			c.SetRanges(sysRanges)
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the reader block
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, listener.ErrClosed) {
			t.Errorf("pending ReadFrame after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrame still blocked 5s after Close")
	}
	<-statsDone
	if _, err := c.ReadFrame(); !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if string(f.Data) != before {
		t.Error("frame data changed after Close")
	}
	if st := c.Stats(); st.Packets != 1 || st.Read != 1 {
		t.Errorf("Stats after Close = %+v, want the 1 packet read before", st)
	}
	if err := c.SetRanges(sysRanges); err == nil {
		t.Error("SetRanges after Close succeeded")
	}
}

func TestListenErrors(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no such interface", Config{Interface: "nosuch0", Ranges: sysRanges}, "capture nosuch0: no such interface"},
		{"bad range", Config{Ranges: []inet.Range{{Proto: inet.TCP, Lo: 5, Hi: 4}}}, "knock range 0 (tcp/5-4): lo > hi"},
		{"block size", Config{BlockSize: 5000}, "block size 5000: want a power of two"},
		{"blocks", Config{NumBlocks: 1}, "1 blocks: want at least 2"},
		{"timeout", Config{BlockTimeout: 1500 * time.Microsecond}, "block timeout 1.5ms: want whole milliseconds"},
		{"ring too big", Config{BlockSize: 1 << 22, NumBlocks: 1 << 10}, "more than"},
	} {
		err := ns.Do(func() error {
			c, err := Listen(c.cfg)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Listen error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestReadPcapTcpdump reads what tcpdump wrote while knocks were sent, on
// the veth (Ethernet) and on "any" (Linux cooked headers).
func TestReadPcapTcpdump(t *testing.T) {
	nstest.RequireTool(t, "tcpdump")
	tb := newTestbed(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"veth", []string{"-i", tb.srvIf}},
		{"any", []string{"-i", "any", "-y", "LINUX_SLL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "knocks.pcap")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append(c.args, "-w", path, "-U", "-c", "2", "udp and dst port 50001")
			cmd := tb.srv.Command(ctx, "tcpdump", args...)
			stderr, err := cmd.StderrPipe()
			must(t, err)
			must(t, cmd.Start())
			// tcpdump says "listening on ..." once its filter is in place.
			br := bufio.NewReader(stderr)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("tcpdump did not start: %q, %v", line, err)
				}
				if strings.Contains(line, "listening on") {
					break
				}
			}
			go io.Copy(io.Discard, br)
			sendUDP(t, tb.cli, "192.0.2.1", 50001)
			sendUDP(t, tb.cli, "2001:db8:1::1", 50001)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("tcpdump: %v", err)
			}
			f, err := os.Open(path)
			must(t, err)
			defer f.Close()
			frames, err := listenertest.ReadPcap(f)
			must(t, err)
			d := listener.NewDecoder(sysRanges)
			var got []listener.Knock
			for _, fr := range frames {
				if k, ok := d.Decode(fr); ok {
					k.Time = time.Time{}
					got = append(got, k)
				}
			}
			want := []listener.Knock{{Src: addr("192.0.2.2"), Proto: udp, Port: 50001}, {Src: addr("2001:db8:1::2"), Proto: udp, Port: 50001}}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
				t.Errorf("knocks in tcpdump's capture (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCaptureReadAllocs checks that ReadFrame allocates nothing, waits for
// a block included: hping3 sends a knock every 2 ms, so most reads wait.
func TestCaptureReadAllocs(t *testing.T) {
	nstest.RequireTool(t, "hping3")
	tb := newTestbed(t)
	c := listenIn(t, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})
	sendUDP(t, tb.cli, "192.0.2.1", 50001)
	if _, err := c.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := tb.cli.Command(ctx, "hping3", "--udp", "-p", "50001", "-i", "u2000", "-c", "400", "-q", "192.0.2.1")
	must(t, cmd.Start())
	defer func() {
		cancel()
		cmd.Wait()
	}()
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		if _, e := c.ReadFrame(); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per ReadFrame, want 0", allocs)
	}
}

// TestCaptureTun captures on a tun device, a link without an Ethernet
// header (ARPHRD_NONE): frames start at the IP header. Packets written to
// the tun file descriptor enter the receive path, as a VPN's do.
func TestCaptureTun(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t)
	const name = "tktun0"
	var tun int
	must(t, ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		tun = fd
		return nil
	}))
	t.Cleanup(func() { unix.Close(tun) })
	ns.MustRun(t, "ip", "addr", "add", "203.0.113.1/24", "dev", name)
	ns.MustRun(t, "ip", "link", "set", name, "up")

	c := listenIn(t, ns, Config{Interface: name, Ranges: sysRanges})
	if c.Link() != listener.LinkIP {
		t.Fatalf("capture on tun: link %v, want ip", c.Link())
	}
	ch := collect(c, sysRanges)
	in := listenertest.Packet{Link: listener.LinkIP, Src: "203.0.113.2", Dst: "203.0.113.1"}
	for _, v := range []listenertest.Packet{
		listenertest.With(in, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort = tcp, true, 40001 }),
		listenertest.With(in, func(v *listenertest.Packet) { v.Proto, v.ACK, v.DstPort = tcp, true, 40002 }), // not a knock
		listenertest.With(in, func(v *listenertest.Packet) { v.Proto, v.DstPort = udp, 51000 }),              // not a knock
		listenertest.With(in, func(v *listenertest.Packet) { v.Proto, v.DstPort = udp, 50999 }),
	} {
		if _, err := unix.Write(tun, v.Frame(t).Data); err != nil {
			t.Fatalf("write to tun: %v", err)
		}
	}
	want := []listener.Knock{{Src: addr("203.0.113.2"), Proto: tcp, Port: 40001}, {Src: addr("203.0.113.2"), Proto: udp, Port: 50999}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 50999)), cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("knocks on tun (-want +got):\n%s", diff)
	}
}

// TestCaptureAnyProtocol: on all interfaces the frames have no link header,
// and the kernel's filter takes a frame for IPv4 or IPv6 by the version in
// its first byte only if its protocol field (the EtherType it came with)
// says so too. Frames of another protocol (EtherType 0x88b5, for local
// experiments), and IPv4 sent as IPv6 or the other way round, each carrying
// what looks like a knock, are dropped by the kernel's filter, the classic
// one and the prefilter alike (whose counters do not count them: they are no
// knocks): the capture's own check behind it (notIP) sees none of them,
// while a socket without a filter shows that the namespace received them
// all. The frames take both of the prefilter's header walks. The real knock
// after them comes out.
func TestCaptureAnyProtocol(t *testing.T) {
	for _, prefilter := range []bool{false, true} {
		name := "classic"
		if prefilter {
			name = "prefilter"
		}
		t.Run(name, func(t *testing.T) { testCaptureAnyProtocol(t, prefilter) })
	}
}

func testCaptureAnyProtocol(t *testing.T, prefilter bool) {
	tb := newTestbed(t)
	cfg := Config{Interface: "any", Ranges: sysRanges}
	var p *Prefilter
	if prefilter {
		// Every port an anchor: the prefilter passes what Filter does.
		p = newTestPrefilterHold(t, nil, time.Minute)
		var all listener.AnchorPorts
		for pi := range all.Ports {
			for i := range all.Ports[pi] {
				all.Ports[pi][i] = ^uint64(0)
			}
		}
		publish(t, p, all)
		cfg.Prefilter = p
	}
	witness := openTap(t, tb.srv)
	c := listenIn(t, tb.srv, cfg)
	ch := collect(c, sysRanges)

	frame := func(v listenertest.Packet, etherType uint16) []byte {
		v.DstMAC = tb.srvMAC
		data := v.Frame(t).Data
		binary.BigEndian.PutUint16(data[12:], etherType)
		return data
	}
	v4 := listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1"}
	v6 := listenertest.Packet{Src: "2001:db8:1::2", Dst: "2001:db8:1::1"}
	udp4 := listenertest.With(v4, func(v *listenertest.Packet) { v.Proto, v.DstPort, v.Payload = udp, 50002, []byte("knock, knock") })
	short4 := listenertest.With(v4, func(v *listenertest.Packet) { v.Proto, v.DstPort = udp, 50003 })
	syn4 := listenertest.With(v4, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort = tcp, true, 40002 })
	opts4 := listenertest.With(syn4, func(v *listenertest.Packet) { v.IPOptions, v.DstPort = true, 40003 })
	udp6 := listenertest.With(v6, func(v *listenertest.Packet) { v.Proto, v.DstPort = udp, 50004 })
	syn6 := listenertest.With(v6, func(v *listenertest.Packet) { v.Proto, v.SYN, v.DstPort = tcp, true, 40004 })
	disguised := [][]byte{
		frame(udp4, ethLocal),
		frame(udp4, unix.ETH_P_IPV6),
		frame(short4, unix.ETH_P_IPV6),
		frame(syn4, unix.ETH_P_IPV6),
		frame(opts4, ethLocal),
		frame(udp6, unix.ETH_P_IP),
		frame(udp6, ethLocal),
		frame(syn6, unix.ETH_P_IP),
	}
	sentinel := frame(listenertest.With(udp4, func(v *listenertest.Packet) { v.DstPort = 50999 }), unix.ETH_P_IP)
	sendRaw(t, tb.cli, tb.cliIf, append(disguised, sentinel)...)

	want := []listener.Knock{{Src: addr("192.0.2.2"), Proto: udp, Port: 50999}}
	if diff := cmp.Diff(want, knocks(t, until(t, ch, 50999)), cmp.Comparer(func(a, b listener.Knock) bool { return a == b })); diff != "" {
		t.Errorf("knocks on any (-want +got):\n%s", diff)
	}
	if n := witness.count(t, disguised, sentinel); n != len(disguised) {
		t.Fatalf("the server's namespace received %d of the %d frames sent with a protocol field that is not their IP version", n, len(disguised))
	}
	if n := c.counts.notIP.Load(); n != 0 {
		t.Errorf("%d frames whose protocol field is not their IP version passed the kernel's filter (the capture left them out), want 0", n)
	}
	if prefilter {
		if s, want := pfStats(t, p), (PrefilterStats{Anchors: 1}); s != want {
			t.Errorf("prefilter counters %+v, want %+v (the knock alone)", s, want)
		}
	}
}
