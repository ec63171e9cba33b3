package capture

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	rangetab "github.com/tknock/tknock/listener/internal/ranges"
	"github.com/tknock/tknock/listener/listenertest"
	"golang.org/x/net/bpf"
)

// EtherTypes of frames in the tests, as a frame's protocol field holds
// them (sll_protocol, skb->protocol).
const (
	ethIPv4   = 0x0800
	ethIPv6   = 0x86dd
	ethLocal  = 0x88b5 // IEEE local experimental
	ethDot1Q  = 0x8100
	ethNoType = 0
)

// filterVM runs a program of Filter in golang.org/x/net/bpf's VM. The VM
// knows no kernel extension but the frame's length, and the
// listener.LinkIP program loads the frame's protocol field with the
// SKF_AD_PROTOCOL extension: the VM gets that program with each such load
// replaced by a load of a constant, the protocol the kernel would load for
// the frame at hand (one VM per protocol). That instruction is the only
// difference from the program the kernel runs, and what it loads is what
// the extension loads there (in host order); TestCaptureAnyProtocol runs
// the unchanged program in the kernel. The listener.LinkEthernet program
// loads no extension and runs as it is. Safe for concurrent use.
type filterVM struct {
	link listener.LinkType
	prog []bpf.Instruction

	mu  sync.Mutex // guards vms
	vms map[uint32]*bpf.VM
}

// vm builds the filter for ranges and link for x/net/bpf's VM.
func vm(t testing.TB, ranges []inet.Range, link listener.LinkType) *filterVM {
	t.Helper()
	raw, err := Filter(ranges, link)
	if err != nil {
		t.Fatalf("Filter: %v", err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("Filter returned instructions that do not disassemble: %v", raw)
	}
	v := &filterVM{link: link, prog: prog, vms: make(map[uint32]*bpf.VM)}
	if _, err := v.vm(ethIPv4); err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return v
}

// vm returns the VM that runs the program for frames of protocol proto.
func (v *filterVM) vm(proto uint16) (*bpf.VM, error) {
	key := uint32(proto)
	if v.link != listener.LinkIP {
		key = 1 << 16 // one VM: the program does not look at the protocol
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if m, ok := v.vms[key]; ok {
		return m, nil
	}
	prog := slices.Clone(v.prog)
	for i, ins := range prog {
		if ext, ok := ins.(bpf.LoadExtension); ok && ext.Num == bpf.ExtProto {
			prog[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(proto)}
		}
	}
	m, err := bpf.NewVM(prog)
	if err != nil {
		return nil, err
	}
	v.vms[key] = m
	return m, nil
}

// Run runs the program on a frame whose protocol field is what a
// received frame of its kind has: on listener.LinkIP the IP version its
// first byte names (see ipProto).
func (v *filterVM) Run(data []byte) (int, error) { return v.RunProto(data, ipProto(data)) }

// RunProto runs the program on a frame whose protocol field is proto
// (looked at on listener.LinkIP only).
func (v *filterVM) RunProto(data []byte, proto uint16) (int, error) {
	m, err := v.vm(proto)
	if err != nil {
		return 0, err
	}
	return m.Run(data)
}

// ipProto returns the protocol field of a received listener.LinkIP frame
// that starts with data: the EtherType of the IP version in its first
// byte, or 0 for one that is neither 4 nor 6.
func ipProto(data []byte) uint16 {
	if len(data) > 0 {
		switch data[0] >> 4 {
		case 4:
			return ethIPv4
		case 6:
			return ethIPv6
		}
	}
	return ethNoType
}

func TestFilterFrames(t *testing.T) {
	vms := map[listener.LinkType]*filterVM{
		listener.LinkEthernet: vm(t, listenertest.Ranges(), listener.LinkEthernet),
		listener.LinkIP:       vm(t, listenertest.Ranges(), listener.LinkIP),
	}
	for _, c := range listenertest.Cases() {
		f := c.Frame(t)
		v := vms[f.Link]
		if v == nil {
			continue // a link type the filter does not take
		}
		n, err := v.Run(f.Data)
		if err != nil {
			t.Errorf("%s: Run: %v", c.Name, err)
			continue
		}
		if got := n > 0; got != c.BPF {
			t.Errorf("%s: filter accepts = %v (returned %d), want %v", c.Name, got, n, c.BPF)
		}
		if n > 0 && n != SnapLen {
			t.Errorf("%s: filter returned %d, want the snap length %d", c.Name, n, SnapLen)
		}
	}
}

// TestFilterAnyProtocol: a listener.LinkIP frame (a capture on all
// interfaces) passes only if its protocol field names the IP version it
// starts with: the knocks of each IP version pass as that version and are
// dropped as the other one, as EtherType 0x88b5 or 0x8100, or with no
// protocol (in the VM: see filterVM). The listener.LinkEthernet program
// loads no protocol field: it goes by the EtherType in the frame.
func TestFilterAnyProtocol(t *testing.T) {
	v := vm(t, listenertest.Ranges(), listener.LinkIP)
	ip := func(p listenertest.Packet) listenertest.Packet { p.Link = listener.LinkIP; return p }
	for _, p := range []listenertest.Packet{
		ip(listenertest.V4SYN()), ip(listenertest.V4UDP()),
		ip(listenertest.V6SYN()), ip(listenertest.V6UDP()),
		ip(listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.IPOptions = true })),
	} {
		data := p.Frame(t).Data
		for _, proto := range []uint16{ethIPv4, ethIPv6, ethLocal, ethDot1Q, ethNoType} {
			n, err := v.RunProto(data, proto)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got, want := n > 0, proto == ipProto(data); got != want {
				t.Errorf("%v from %s to %d as protocol %#04x: filter accepts = %v, want %v", p.Proto, p.Src, p.DstPort, proto, got, want)
			}
		}
	}
	eth := vm(t, listenertest.Ranges(), listener.LinkEthernet)
	for _, ins := range eth.prog {
		if _, ok := ins.(bpf.LoadExtension); ok {
			t.Errorf("the Ethernet program loads an extension: %v", ins)
		}
	}
}

func TestFilterRangeEdges(t *testing.T) {
	ranges := []inet.Range{
		{Proto: inet.UDP, Lo: 0, Hi: 10},
		{Proto: inet.UDP, Lo: 12, Hi: 12},
		{Proto: inet.UDP, Lo: 65530, Hi: 65535},
		{Proto: inet.TCP, Lo: 11, Hi: 11},
	}
	v := vm(t, ranges, listener.LinkEthernet)
	tbl, err := rangetab.New(ranges)
	if err != nil {
		t.Fatal(err)
	}
	for port := 0; port <= 65535; port++ {
		for _, proto := range []inet.Proto{inet.TCP, inet.UDP} {
			if !(port < 20 || port > 65520) {
				continue
			}
			f := listenertest.Packet{Src: "192.0.2.2", Dst: "192.0.2.1", Proto: proto, SYN: true, DstPort: uint16(port)}.Frame(t)
			n, err := v.Run(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			want := tbl.Contains(proto, uint16(port))
			if got := n > 0; got != want {
				t.Errorf("%v port %d: filter accepts = %v, want %v", proto, port, got, want)
			}
		}
	}
}

func TestFilterNoRanges(t *testing.T) {
	for _, link := range []listener.LinkType{listener.LinkEthernet, listener.LinkIP} {
		v := vm(t, nil, link)
		for _, c := range listenertest.Cases() {
			f := c.Frame(t)
			if f.Link != link {
				continue
			}
			if n, _ := v.Run(f.Data); n != 0 {
				t.Errorf("%v, no ranges: %s: filter accepts (%d), want drop", link, c.Name, n)
			}
		}
	}
}

// TestFilterOneProto checks that a protocol without ranges is dropped
// while the other still passes.
func TestFilterOneProto(t *testing.T) {
	v := vm(t, []inet.Range{{Proto: inet.UDP, Lo: 40000, Hi: 40999}}, listener.LinkEthernet)
	for _, c := range []struct {
		p    listenertest.Packet
		want bool
	}{
		{listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.DstPort = 40000 }), false},
		{listenertest.With(listenertest.V4UDP(), func(v *listenertest.Packet) { v.DstPort = 40000 }), true},
		{listenertest.With(listenertest.V6SYN(), func(v *listenertest.Packet) { v.DstPort = 40000 }), false},
		{listenertest.With(listenertest.V6UDP(), func(v *listenertest.Packet) { v.DstPort = 40999 }), true},
	} {
		n, err := v.Run(c.p.Frame(t).Data)
		if err != nil {
			t.Fatal(err)
		}
		if got := n > 0; got != c.want {
			t.Errorf("%v to %d: filter accepts = %v, want %v", c.p.Proto, c.p.DstPort, got, c.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	many := make([]inet.Range, 0, rangetab.MaxSpans+1)
	for i := range rangetab.MaxSpans + 1 {
		many = append(many, inet.Range{Proto: inet.UDP, Lo: uint16(2 * i), Hi: uint16(2 * i)})
	}
	for _, c := range []struct {
		name   string
		ranges []inet.Range
		link   listener.LinkType
		want   string
	}{
		{"lo > hi", []inet.Range{{Proto: inet.TCP, Lo: 9, Hi: 8}}, listener.LinkEthernet, "knock range 0 (tcp/9-8): lo > hi"},
		{"bad proto", []inet.Range{{Proto: inet.UDP, Lo: 1, Hi: 8}, {Proto: 1, Lo: 1, Hi: 2}}, listener.LinkEthernet, "knock range 1 (proto(1)/1-2): protocol proto(1): want tcp or udp"},
		{"bad link", listenertest.Ranges(), 0, "unknown link type link(0)"},
		{"too many", many, listener.LinkIP, "513 disjoint ranges after merging, at most 512"},
	} {
		_, err := Filter(c.ranges, c.link)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Filter error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestFilterLargest checks that the largest allowed table assembles (no
// jump overflows) and still filters right.
func TestFilterLargest(t *testing.T) {
	var ranges []inet.Range
	for i := range rangetab.MaxSpans / 2 {
		ranges = append(ranges,
			inet.Range{Proto: inet.UDP, Lo: uint16(10000 + 4*i), Hi: uint16(10000 + 4*i + 1)},
			inet.Range{Proto: inet.TCP, Lo: uint16(20000 + 4*i), Hi: uint16(20000 + 4*i + 1)})
	}
	raw, err := Filter(ranges, listener.LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 4096 {
		t.Fatalf("%d instructions, more than the kernel's 4096", len(raw))
	}
	v := vm(t, ranges, listener.LinkEthernet)
	for _, c := range []struct {
		p    listenertest.Packet
		want bool
	}{
		{listenertest.With(listenertest.V4UDP(), func(v *listenertest.Packet) { v.DstPort = 10000 + 4*255 + 1 }), true},
		{listenertest.With(listenertest.V4UDP(), func(v *listenertest.Packet) { v.DstPort = 10000 + 4*255 + 2 }), false},
		{listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.DstPort = 20000 + 4*255 }), true},
		{listenertest.With(listenertest.V4SYN(), func(v *listenertest.Packet) { v.DstPort = 20000 + 4*256 }), false},
	} {
		n, _ := v.Run(c.p.Frame(t).Data)
		if got := n > 0; got != c.want {
			t.Errorf("%v to %d: filter accepts = %v, want %v", c.p.Proto, c.p.DstPort, got, c.want)
		}
	}
}

func TestRangeTableMerge(t *testing.T) {
	tbl, err := rangetab.New([]inet.Range{
		{Proto: inet.TCP, Lo: 30, Hi: 40},
		{Proto: inet.TCP, Lo: 10, Hi: 20},
		{Proto: inet.TCP, Lo: 21, Hi: 25}, // adjacent to 10-20
		{Proto: inet.TCP, Lo: 35, Hi: 38}, // inside 30-40
		{Proto: inet.UDP, Lo: 65535, Hi: 65535},
		{Proto: inet.UDP, Lo: 0, Hi: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := rangetab.Table{TCP: []rangetab.Span{{Lo: 10, Hi: 25}, {Lo: 30, Hi: 40}}, UDP: []rangetab.Span{{Lo: 0, Hi: 0}, {Lo: 65535, Hi: 65535}}}
	if !slices.Equal(tbl.TCP, want.TCP) || !slices.Equal(tbl.UDP, want.UDP) {
		t.Errorf("merged = %+v, want %+v", *tbl, want)
	}
}
