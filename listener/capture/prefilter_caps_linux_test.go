package capture

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/listener/listenertest"
)

// unitCaps is what the prefilter's load may use under the shipped unit
// (deploy/tknockd.service): CAP_BPF, and not CAP_PERFMON or CAP_SYS_ADMIN,
// without which the verifier treats the program as unprivileged (it
// forbids pointer arithmetic it cannot sanitise against Spectre v1, and
// rewrites what it allows). The unit's other capabilities (CAP_NET_ADMIN,
// CAP_NET_RAW) change nothing for the verifier.
var unitCaps = []uintptr{unix.CAP_BPF}

// withCaps runs f on an OS thread whose effective capabilities are caps
// alone, and waits for it. Capabilities belong to a thread: the rest of
// the process keeps root's. The thread is never unlocked, so the Go
// runtime discards it when f returns.
func withCaps(caps []uintptr, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		data[0].Effective, data[1].Effective = 0, 0
		for _, c := range caps {
			data[c/32].Effective |= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// loadPrefilter loads a prefilter for tests: with root's capabilities, or
// with unitCaps alone.
func loadPrefilter(t testing.TB, hold time.Duration, asUnit bool) *Prefilter {
	t.Helper()
	nstest.RequireRoot(t)
	var p *Prefilter
	load := func() error {
		var err error
		p, err = NewPrefilter(hold)
		return err
	}
	var err error
	if asUnit {
		err = withCaps(unitCaps, load)
	} else {
		err = load()
	}
	if err != nil {
		t.Fatalf("NewPrefilter (as the unit: %v): %v", asUnit, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// loadName names a way of loading in test names.
func loadName(asUnit bool) string {
	if asUnit {
		return "unit"
	}
	return "root"
}

// TestPrefilterUnitCaps loads the prefilter with the capabilities the
// shipped unit gives it (CAP_BPF, no CAP_PERFMON): the verifier takes
// every program of it, and the programs it rewrote for an unprivileged
// loader give the verdicts of TestPrefilterFastSlow and
// TestPrefilterAllAnchored (TestPrefilterRule1 runs them too). It added
// no speculation barrier to any of them: each one stalls the CPU on every
// frame (BenchmarkPrefilterRun shows what they cost).
func TestPrefilterUnitCaps(t *testing.T) {
	t.Run("no-barriers", func(t *testing.T) {
		// BPF_ST|BPF_NOSPEC, the barrier the verifier inserts.
		const nospec = 0xc2
		p := loadPrefilter(t, time.Second, true)
		for k, prog := range p.progs {
			info, err := prog.Info()
			if err != nil {
				t.Fatalf("program info: %v", err)
			}
			insns, err := info.Instructions()
			if err != nil {
				t.Fatalf("%v: translated instructions: %v", k, err)
			}
			n := 0
			for _, ins := range insns {
				if ins.OpCode == nospec {
					n++
				}
			}
			if n != 0 {
				t.Errorf("%v program (express %v): %d speculation barriers in %d instructions, want none", k.link, k.express, n, len(insns))
			}
		}
	})
	t.Run("fast-slow", func(t *testing.T) {
		p := newTestPrefilterAs(t, listenertest.Ranges(), time.Second, true)
		publish(t, p, fastSlowAnchors)
		pfApply(t, p, fastSlowChecks())
	})
	t.Run("all-anchored", func(t *testing.T) {
		checkAllAnchored(t, newTestPrefilterAs(t, listenertest.Ranges(), time.Second, true))
	})
}

// BenchmarkPrefilterRun runs the ring program in the kernel
// (BPF_PROG_TEST_RUN, b.N runs in one call) on the frames a flood and a
// client send, loaded with root's capabilities and with the unit's (the
// verifier then adds its Spectre masks and barriers). ns/op is the
// program's run with the test run's own overhead; kernel-ns/run the
// kernel's figure for the program alone. The test run hands the program
// a linear buffer: a frame in page fragments makes the slow path's loads
// dearer than here.
func BenchmarkPrefilterRun(b *testing.B) {
	const dst4, dst6 = "198.51.100.1", "2001:db8::1"
	syn := func(src, dst string, port uint16) listenertest.Packet {
		return listenertest.Packet{Src: src, Dst: dst, Proto: inet.TCP, SYN: true, DstPort: port}
	}
	udp := func(src, dst string, port uint16) listenertest.Packet {
		return listenertest.Packet{Src: src, Dst: dst, Proto: inet.UDP, DstPort: port, Payload: []byte("knock")}
	}
	ip := func(v listenertest.Packet) listenertest.Packet { v.Link = listener.LinkIP; return v }
	cases := []struct {
		name   string
		mark   *listenertest.Packet // sent once first: the anchor that marks the source
		p      listenertest.Packet
		proto  uint16 // the frame's protocol field; 0: what a received frame has (frameProto)
		passes bool
	}{
		{"v4-syn-stranger", nil, syn("192.0.2.9", dst4, 40200), 0, false},
		{"v4-syn-anchor", nil, syn("192.0.2.9", dst4, 40100), 0, true},
		{"v4-syn-tracked", ptrTo(syn("192.0.2.9", dst4, 40100)), syn("192.0.2.9", dst4, 40200), 0, true},
		{"v4-udp-stranger", nil, udp("192.0.2.9", dst4, 50020), 0, false},
		{"v6-syn-stranger", nil, syn("2001:db8::9", dst6, 40200), 0, false},
		{"v6-udp-tracked", ptrTo(udp("2001:db8::9", dst6, 50010)), udp("2001:db8::9", dst6, 50020), 0, true},
		// On all interfaces (no link header), where the program checks
		// the frame's protocol field.
		{"ip-v4-syn-stranger", nil, ip(syn("192.0.2.9", dst4, 40200)), 0, false},
		{"ip-v4-syn-tracked", ptrTo(ip(syn("192.0.2.9", dst4, 40100))), ip(syn("192.0.2.9", dst4, 40200)), 0, true},
		{"ip-v6-udp-tracked", ptrTo(ip(udp("2001:db8::9", dst6, 50010))), ip(udp("2001:db8::9", dst6, 50020)), 0, true},
		{"ip-v4-syn-anchor-as-v6", nil, ip(syn("192.0.2.9", dst4, 40100)), unix.ETH_P_IPV6, false},
	}
	for _, asUnit := range []bool{false, true} {
		for _, c := range cases {
			b.Run(loadName(asUnit)+"/"+c.name, func(b *testing.B) {
				p := newTestPrefilterAs(b, listenertest.Ranges(), time.Minute, asUnit)
				publish(b, p, anchorSet([]uint16{40100}, []uint16{50010}))
				if c.mark != nil {
					if run(b, p, c.mark.Frame(b)) == 0 {
						b.Fatal("the marking anchor was dropped")
					}
				}
				f := c.p.Frame(b)
				proto := c.proto
				if proto == 0 {
					proto = frameProto(f)
				}
				data := testRunData(f, proto)
				prog := p.progs[progKey{f.Link, false}]
				b.ResetTimer()
				ret, per, err := prog.Benchmark(data, b.N, nil)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if got := ret > 0; got != c.passes {
					b.Fatalf("passes = %v (returned %d), want %v", got, ret, c.passes)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "kernel-ns/run")
			})
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
