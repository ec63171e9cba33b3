package capture

import (
	"slices"
	"strings"
	"testing"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	rangetab "github.com/tknock/tknock/listener/internal/ranges"
	"github.com/tknock/tknock/listener/listenertest"
	"golang.org/x/net/bpf"
)

// vm builds the filter for ranges and link and loads it into x/net/bpf's VM.
func vm(t testing.TB, ranges []inet.Range, link listener.LinkType) *bpf.VM {
	t.Helper()
	raw, err := Filter(ranges, link)
	if err != nil {
		t.Fatalf("Filter: %v", err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("Filter returned instructions that do not disassemble: %v", raw)
	}
	v, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return v
}

func TestFilterFrames(t *testing.T) {
	vms := map[listener.LinkType]*bpf.VM{
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
