package listener

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tknock/tknock/internal/nstest"
)

// newTestPrefilter loads a prefilter with ranges; it needs root.
func newTestPrefilter(t testing.TB, ranges []PortRange) *Prefilter {
	t.Helper()
	nstest.RequireRoot(t)
	p, err := NewPrefilter(time.Second)
	if err != nil {
		t.Fatalf("NewPrefilter: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.SetRanges(ranges); err != nil {
		t.Fatalf("SetRanges: %v", err)
	}
	return p
}

// run runs the prefilter's program for f.Link on f in the kernel
// (BPF_PROG_TEST_RUN) and returns its verdict. The kernel gives a socket
// filter the data after the first 14 bytes (it takes them for an
// Ethernet header), so every frame goes in behind 14 dummy bytes: the
// program then sees it as a packet socket of its link type does.
func run(t testing.TB, p *Prefilter, f Frame) uint32 {
	t.Helper()
	data := append(make([]byte, 14), f.Data...)
	ret, err := p.progs[progKey{f.Link, false}].Run(&ebpf.RunOptions{Data: data})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret
}

func TestPrefilterLoads(t *testing.T) {
	p := newTestPrefilter(t, testRanges)
	var all AnchorPorts
	for pi := range 2 {
		for i := range all.Ports[pi] {
			all.Ports[pi][i] = ^uint64(0)
		}
	}
	if err := p.Publish(all); err != nil {
		t.Fatal(err)
	}
	for _, c := range frameCases {
		f := c.frame(t)
		if f.Link != LinkEthernet && f.Link != LinkIP {
			continue
		}
		n := run(t, p, f)
		if got := n > 0; got != c.bpf {
			t.Errorf("%s: prefilter accepts = %v (returned %d), want %v", c.name, got, n, c.bpf)
		}
	}
}
