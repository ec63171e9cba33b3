package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/listener"
)

// BenchmarkCaptureLatency measures the time from writing a UDP knock in the
// client namespace to ReadFrame returning it in the server namespace, one
// knock at a time: through the express socket, and through the ring alone
// (which hands over a block when it times out). Reported
// as percentiles of b.N samples; with -benchtime 300x, say.
func BenchmarkCaptureLatency(b *testing.B) {
	for _, c := range []struct {
		name      string
		tov       time.Duration
		noExpress bool
	}{
		{"express", time.Millisecond, false},
		{"ring-only/tov=1ms", time.Millisecond, true},
		{"ring-only/tov=4ms", 4 * time.Millisecond, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			tb := newTestbed(b)
			cp := listenIn(b, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges, BlockTimeout: c.tov, NoExpress: c.noExpress})
			// Unconnected, so the port unreachable answers do not fail writes.
			var conn net.PacketConn
			must(b, tb.cli.Do(func() error {
				var err error
				conn, err = net.ListenPacket("udp", "192.0.2.2:0")
				return err
			}))
			defer conn.Close()
			dst := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50001}
			// Resolve the neighbour first.
			if _, err := conn.WriteTo([]byte("warm-up"), dst); err != nil {
				b.Fatal(err)
			}
			if _, err := cp.ReadFrame(); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			ring := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				if _, err := conn.WriteTo([]byte("knock"), dst); err != nil {
					b.Fatal(err)
				}
				f, err := cp.ReadFrame()
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				lat = append(lat, now.Sub(t0))
				ring = append(ring, now.Sub(f.Time))
				time.Sleep(time.Duration(len(lat)%7) * 300 * time.Microsecond) // desynchronise from the block timer
			}
			slices.Sort(lat)
			slices.Sort(ring)
			pct := func(s []time.Duration, p int) float64 { return float64(s[(len(s)-1)*p/100].Microseconds()) / 1000 }
			b.ReportMetric(pct(lat, 50), "p50-ms")
			b.ReportMetric(pct(lat, 90), "p90-ms")
			b.ReportMetric(pct(lat, 99), "p99-ms")
			b.ReportMetric(pct(ring, 50), "ring-p50-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// Floods for the throughput benchmarks: trafgen in the client namespace
// sends count frames, alternating the two packets of a flood (random source
// ports, random destination ports in the given ranges), as fast as it can,
// for at most floodTimeout.
const (
	floodCount   = 1_000_000
	floodTimeout = 10 * time.Second
)

var floods = []struct {
	name     string
	matching bool   // the frames are knocks
	conf     string // trafgen packets; %[1]s is the server MAC, %[2]s the client's
}{
	{"v4-syn-udp", true, `
{ eth(da=%[1]s, sa=%[2]s), ipv4(sa=192.0.2.2, da=192.0.2.1, ttl=64), tcp(sp=drnd(), dp=drnd(40000, 40999), syn, win=64240) }
{ eth(da=%[1]s, sa=%[2]s), ipv4(sa=192.0.2.2, da=192.0.2.1, ttl=64), udp(sp=drnd(), dp=drnd(50000, 50999)), "knock" }
`},
	{"v6-syn-udp", true, `
{ eth(da=%[1]s, sa=%[2]s), ipv6(sa=2001:db8:1::2, da=2001:db8:1::1, hl=64), tcp(sp=drnd(), dp=drnd(40000, 40999), syn, win=64240) }
{ eth(da=%[1]s, sa=%[2]s), ipv6(sa=2001:db8:1::2, da=2001:db8:1::1, hl=64), udp(sp=drnd(), dp=drnd(50000, 50999)), "knock" }
`},
	{"v4-nonmatching", false, `
{ eth(da=%[1]s, sa=%[2]s), ipv4(sa=192.0.2.2, da=192.0.2.1, ttl=64), tcp(sp=drnd(), dp=drnd(40000, 40999), ack, win=64240) }
{ eth(da=%[1]s, sa=%[2]s), ipv4(sa=192.0.2.2, da=192.0.2.1, ttl=64), udp(sp=drnd(), dp=drnd(51000, 51999)), "knock" }
`},
}

// floodReader is a capture under benchmark: read returns the next frame
// (or an error to look at the stop flag); interrupt makes a blocked read
// return; stats returns the kernel's counters; close releases it once the
// reader goroutine has returned.
type floodReader struct {
	read      func() (listener.Frame, error)
	interrupt func()
	stats     func() (packets, drops uint64)
	close     func()
}

// floodResult is one flood's figures.
type floodResult struct {
	read, knocks     uint64        // frames read, and decoded as knocks
	readPPS          float64       // frames read per second, first to last
	offered          uint64        // frames the server's veth received
	offeredPPS       float64       // over trafgen's run
	kpackets, kdrops uint64        // kernel counters of the socket
	cpu              time.Duration // CPU time of this process (user and system) during the flood
	readerCPU        time.Duration // CPU time of the reader's thread
}

// newFloodBed makes the namespaces, drops the knock ports in nftables (as
// the daemon does), and writes the trafgen configuration of flood i.
func newFloodBed(b *testing.B, i int) (*testbed, string) {
	nstest.RequireTool(b, "trafgen")
	nstest.RequireTool(b, "nft")
	tb := newTestbed(b)
	tb.srv.MustRun(b, "nft", "add table inet tkcap")
	tb.srv.MustRun(b, "nft", "add chain inet tkcap in { type filter hook input priority 0; policy accept; }")
	tb.srv.MustRun(b, "nft", "add rule inet tkcap in meta l4proto { tcp, udp } th dport { 40000-40999, 50000-50999 } drop")
	conf := filepath.Join(b.TempDir(), "flood.cfg")
	must(b, os.WriteFile(conf, []byte(fmt.Sprintf(floods[i].conf, tb.srvMAC, tb.cliMAC)), 0o644))
	return tb, conf
}

// runFlood floods the server once while r reads and decodes on CPU 1
// (trafgen and the veth receive path run on CPU 0).
func runFlood(b *testing.B, tb *testbed, conf string, r floodReader) floodResult {
	var (
		stop        atomic.Bool
		n, knocks   atomic.Uint64
		first, last time.Time
		readerCPU   time.Duration
		done        = make(chan error, 1)
	)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread keeps its CPU affinity
		var cpus unix.CPUSet
		cpus.Set(1)
		if err := unix.SchedSetaffinity(0, &cpus); err != nil {
			done <- err
			return
		}
		var ru0, ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
		defer func() {
			unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
			readerCPU = time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			done <- nil
		}()
		d := listener.NewDecoder(sysRanges)
		for !stop.Load() {
			f, err := r.read()
			if err != nil {
				continue
			}
			now := time.Now()
			if n.Add(1) == 1 {
				first = now
			}
			last = now
			if _, ok := d.Decode(f); ok {
				knocks.Add(1)
			}
		}
	}()

	rx0 := rxPackets(b, tb)
	cpu0 := processCPU(b)
	ctx, cancel := context.WithTimeout(context.Background(), floodTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", tb.cli.Name,
		"taskset", "-c", "0", "trafgen", "--cpus", "1", "--num", strconv.Itoa(floodCount),
		"--out", tb.cliIf, "--conf", conf, "--no-sock-mem")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(t0)
	if err != nil {
		b.Fatalf("trafgen: %v\n%s", err, out)
	}
	// Drain: wait until the reader has been idle for 100 ms.
	for prev := n.Load(); ; {
		time.Sleep(100 * time.Millisecond)
		cur := n.Load()
		if cur == prev {
			break
		}
		prev = cur
	}
	res := floodResult{offered: rxPackets(b, tb) - rx0, cpu: processCPU(b) - cpu0}
	res.kpackets, res.kdrops = r.stats()
	stop.Store(true)
	r.interrupt()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	r.close()
	res.read, res.knocks, res.readerCPU = n.Load(), knocks.Load(), readerCPU
	if res.read > 1 {
		res.readPPS = float64(res.read-1) / last.Sub(first).Seconds()
	}
	res.offeredPPS = float64(res.offered) / elapsed.Seconds()
	return res
}

// report adds the figures of a flood as benchmark metrics.
func (r floodResult) report(b *testing.B) {
	b.ReportMetric(r.readPPS, "read-pps")
	b.ReportMetric(r.offeredPPS, "offered-pps")
	b.ReportMetric(float64(r.read), "read")
	b.ReportMetric(float64(r.offered), "offered")
	b.ReportMetric(float64(r.kdrops), "kernel-drops")
	if r.read > 0 {
		b.ReportMetric(float64(r.cpu.Nanoseconds())/float64(r.read), "cpu-ns/frame")
		b.ReportMetric(float64(r.readerCPU.Nanoseconds())/float64(r.read), "reader-cpu-ns/frame")
	}
	b.ReportMetric(0, "ns/op")
	b.Logf("read %d frames (%d knocks) at %.0f/s; offered %d at %.0f/s; kernel: %d passed the filter, %d dropped; CPU %v, reader thread %v",
		r.read, r.knocks, r.readPPS, r.offered, r.offeredPPS, r.kpackets, r.kdrops, r.cpu, r.readerCPU)
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	must(b, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rxPackets is the receive counter of the server's veth.
func rxPackets(b *testing.B, tb *testbed) uint64 {
	out := tb.srv.MustRun(b, "ip", "-s", "-j", "link", "show", "dev", tb.srvIf)
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		b.Fatalf("ip -s -j link: %v: %s", err, out)
	}
	return links[0].Stats64.RX.Packets
}

// BenchmarkCaptureFlood measures the pure-Go ring (Conn) reading and
// decoding a bounded trafgen flood. Run it with -benchtime 1x (each
// iteration is a flood of floodCount frames); compare with
// BenchmarkAfpacketFlood (go test -tags cgobench).
func BenchmarkCaptureFlood(b *testing.B) {
	for i, fl := range floods {
		b.Run(fl.name, func(b *testing.B) {
			tb, conf := newFloodBed(b, i)
			var last floodResult
			for b.Loop() {
				c := listenIn(b, tb.srv, Config{Interface: tb.srvIf, Ranges: sysRanges})
				before := c.Stats()
				res := runFlood(b, tb, conf, floodReader{
					read:      c.ReadFrame,
					interrupt: func() { c.Close() },
					stats: func() (uint64, uint64) {
						s := c.Stats()
						return s.Packets - before.Packets, s.Drops - before.Drops
					},
					close: func() {},
				})
				res.report(b)
				last = res
			}
			if !fl.matching && last.read != 0 {
				b.Errorf("%d frames of a non-matching flood reached user space", last.read)
			}
		})
	}
}
