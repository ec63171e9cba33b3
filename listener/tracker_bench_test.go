package listener

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

// trkBenchUsers returns n users with the default parameters.
func trkBenchUsers(n int) []User {
	us := make([]User, n)
	for i := range us {
		us[i] = trkUser(fmt.Sprintf("user%d", i), nil)
	}
	return us
}

// trkBenchTracker returns a tracker of n users with the default
// configuration (default capacity: 64 MiB of sources) and the live anchor
// ports of its table.
func trkBenchTracker(b *testing.B, n int, emit func(Event)) (*Tracker, []uint16) {
	b.Helper()
	if emit == nil {
		emit = func(Event) {}
	}
	tr, err := NewTracker(DefaultConfig(), trkBenchUsers(n), trkT0, emit)
	if err != nil {
		b.Fatal(err)
	}
	return tr, trkLiveAnchors(tr, inet.TCP)
}

// trkSpoof writes source address number i into an IPv4 Ethernet frame:
// 1.0.0.0 to 128.255.255.255, all unicast, distinct for 2 billion frames
// (an address seen again would be a second knock, a different workload).
func trkSpoof(f []byte, i uint32) { binary.BigEndian.PutUint32(f[26:30], 0x01000000+i&0x7fffffff) }

// BenchmarkKnock is the packet path for a flood of spoofed sources at
// anchor ports, the worst case that needs no HMAC: decode the frame, look
// the anchor up, insert the source, evicting the oldest anchor-only one
// of its bucket from the full store, every packet. The frames go as Run
// takes them under a flood: decoded one by one into a batch of knocks,
// each full batch given to the tracker at once (BenchmarkTrackerKnock
// gives the tracker one knock at a time, as a lone knock goes). It must
// not grow with the number of users.
func BenchmarkKnock(b *testing.B) {
	for _, n := range []int{1, 1000, 100_000} {
		tr, anchors := trkBenchTracker(b, n, nil)
		dec := NewDecoder(tr.Ranges())
		frames := make([]Frame, 4096)
		for i := range frames {
			frames[i] = trkFrame(b, trkA, inet.TCP, anchors[i%len(anchors)], false, trkAt(trkMid))
		}
		// Fill the store first: the steady state of a flood is a full
		// store, every bucket full.
		var src uint32
		for range 4 * DefaultCapacity {
			src++
			f := frames[src%4096]
			trkSpoof(f.Data, src)
			k, _ := dec.Decode(f)
			tr.Knock(k)
		}
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer trkReportCPU(b)()
			// As Run does under a flood: frames decoded as they come
			// into a batch, the full batch to the tracker.
			var (
				ks [maxBatch]Knock
				v  verdicts
				nk int
			)
			for b.Loop() {
				src++
				f := frames[src%4096]
				trkSpoof(f.Data, src)
				f.Time = f.Time.Add(time.Duration(src))
				vd := dec.decode(&f, &ks[nk])
				v[vd]++
				if vd == isKnock {
					if nk++; nk == len(ks) {
						dec.add(&v)
						tr.knockBatch(ks[:])
						nk = 0
					}
				}
			}
			dec.add(&v)
			tr.knockBatch(ks[:nk])
			// The anchor store full. (A spoofed source that finds
			// another's tag, and knocks a bound port of its own address
			// at a candidate's anchor, about (k-1)/n per such pair, moves
			// to the advanced store: Stats.Tracked may count it too.)
			if tr.anc.n != tr.anc.capacity() {
				b.Errorf("%d sources in the anchor store, want it full (%d)", tr.anc.n, tr.anc.capacity())
			}
		})
	}
}

// trkReportCPU starts measuring CPU time; the function it returns reports
// it per op as cpu-ns/op (robust against a busy machine, unlike ns/op).
func trkReportCPU(b *testing.B) func() {
	start := trkCPUTime()
	return func() {
		if c := trkCPUTime() - start; c > 0 && b.N > 0 {
			b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkTrackerKnock is BenchmarkKnock without the decoder, and one
// knock at a time, as Run gives the tracker a knock that came alone (the
// decoder fills a Knock in place, field by field; the tracker reads it
// there): the cost of a lone knock, whose state's cache misses cannot
// overlap with those of others.
func BenchmarkTrackerKnock(b *testing.B) {
	for _, n := range []int{1, 1000, 100_000} {
		tr, anchors := trkBenchTracker(b, n, nil)
		at := trkAt(trkMid)
		var (
			src uint32
			ks  [1]Knock
		)
		next := func() {
			src++
			k := &ks[0]
			// All 32 bits: 24 would come round again after 16 M knocks,
			// within a -count 3 run, and a source seen before is a second
			// knock that derives bound ports (the benchmark's knocks all
			// carry one time, so no record is older than another).
			k.Src = netip.AddrFrom4([4]byte{byte(src >> 24), byte(src >> 16), byte(src >> 8), byte(src)})
			k.Proto = inet.TCP
			k.Port = anchors[src%uint32(len(anchors))]
			k.Time = at
			tr.knockBatch(ks[:])
		}
		for range 4 * DefaultCapacity {
			next()
		}
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			defer trkReportCPU(b)()
			for b.Loop() {
				next()
			}
		})
	}
}

// BenchmarkClientSequence is a real client's whole sequence, one knock per
// op: the second knock derives the bound ports of every candidate at the
// anchor port (one HMAC each), so it grows with how many users share it.
func BenchmarkClientSequence(b *testing.B) {
	for _, n := range []int{1, 1000, 100_000} {
		users := trkBenchUsers(n)
		opened := 0
		tr, _ := trkBenchTracker(b, n, func(e Event) {
			if e.Kind == Opened || e.Kind == Replay {
				opened++
			}
		})
		const clients = 4096
		seqs := make([][]uint16, clients)
		srcs := make([]netip.Addr, clients)
		for i := range seqs {
			srcs[i] = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			seqs[i] = trkSeq(b, users[i%n], "ssh", trkW0, srcs[i])
		}
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			ns := trkAt(trkMid).UnixNano()
			i := 0
			for b.Loop() {
				c := i / 4 % clients
				ns += 100
				tr.Knock(Knock{Src: srcs[c], Proto: inet.TCP, Port: seqs[c][i%4], Time: time.Unix(0, ns)})
				i++
			}
			if i >= 4 && opened == 0 {
				b.Error("no sequence completed")
			}
		})
	}
}

// BenchmarkAnchorBuild builds the anchor table of 100 000 users (one
// service, skew 1, clock skew detection to 5: 12 windows each): from
// nothing (what NewTracker and a reload cost) and for the next window
// boundary (what the build-ahead goroutine does every period).
func BenchmarkAnchorBuild(b *testing.B) {
	users := trkBenchUsers(100_000)
	b.Run("cold/users=100000", func(b *testing.B) {
		for b.Loop() {
			if _, err := newTrackerState(DefaultConfig(), users, trkT0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("next/users=100000", func(b *testing.B) {
		st, err := newTrackerState(DefaultConfig(), users, trkT0)
		if err != nil {
			b.Fatal(err)
		}
		ns := trkT0.UnixNano()
		for b.Loop() {
			ns += 30e9
			st.b.recycle(st.b.build(ns))
		}
	})
}

// trkBenchSource is an endless Source of frames from memory: spoofed
// sources knocking at anchor ports, and every 1000th frame a knock of one
// of 256 real clients, rotating; capture times 100 ns apart. It ends after
// n frames.
type trkBenchSource struct {
	flood   []Frame
	clients [][]Frame // per client, its sequence's frames
	i, n    int
	client  int // frames since the latest client frame
	ns      int64
}

func (s *trkBenchSource) ReadFrame() (Frame, error) {
	var fs [1]Frame
	if _, err := s.ReadFrames(fs[:]); err != nil {
		return Frame{}, err
	}
	return fs[0], nil
}

// ReadFrames makes it a BatchSource, always ready until the end.
func (s *trkBenchSource) ReadFrames(fs []Frame) (int, error) {
	n := min(len(fs), s.n-s.i)
	if n <= 0 {
		return 0, io.EOF
	}
	for j := range fs[:n] {
		s.i++
		s.ns += 100
		var f *Frame
		// len(s.flood) and len(s.clients) are powers of two: masks, not
		// divisions, so that the fake source costs the pipeline little.
		if s.client++; s.client == 1000 {
			s.client = 0
			k := s.i / 1000
			f = &s.clients[k/4&(len(s.clients)-1)][k%4]
		} else {
			f = &s.flood[s.i&(len(s.flood)-1)]
			trkSpoof(f.Data, uint32(s.i))
		}
		// Field by field, not a Frame copied whole after its Time was
		// set: that copy would read narrow stores with wide loads, which
		// wait for every earlier store (the tracker's state writes).
		o := &fs[j]
		o.Data, o.Time, o.Link, o.Ifindex = f.Data, time.Unix(0, s.ns), f.Link, f.Ifindex
	}
	return n, nil
}

func (s *trkBenchSource) Close() error { return nil }

// BenchmarkPipeline runs frames from memory through Run: decode, tracker
// and a fake firewall that counts grants, one frame per op, on one
// goroutine. Run it with -cpu 1 for the one-core figure.
func BenchmarkPipeline(b *testing.B) {
	for _, n := range []int{1, 1000} {
		users := trkBenchUsers(n)
		grants := 0
		tr, anchors := trkBenchTracker(b, n, func(e Event) {
			if e.Kind == Opened {
				grants++
			}
		})
		src := &trkBenchSource{ns: trkAt(time.Second).UnixNano()}
		rng := rand.New(rand.NewPCG(1, 1))
		for range 4096 {
			src.flood = append(src.flood, trkFrame(b, trkA, inet.TCP, anchors[rng.IntN(len(anchors))], false, time.Time{}))
		}
		for c := range 256 {
			a := netip.AddrFrom4([4]byte{198, 51, 100, byte(c)})
			var fs []Frame
			for _, p := range trkSeq(b, users[c%n], "ssh", trkW0, a) {
				fs = append(fs, trkFrame(b, a, inet.TCP, p, false, time.Time{}))
			}
			src.clients = append(src.clients, fs)
		}
		dec := NewDecoder(tr.Ranges())
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			src.i, src.n, src.client = 0, b.N, 0
			start, cpu := time.Now(), trkCPUTime()
			if err := Run(context.Background(), src, dec, tr); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "packets/s")
			if c := trkCPUTime() - cpu; c > 0 {
				b.ReportMetric(float64(b.N)/c.Seconds(), "packets/cpu-s")
			}
			if b.N >= 256*4000 && grants == 0 {
				b.Error("no client was granted access")
			}
		})
	}
}
