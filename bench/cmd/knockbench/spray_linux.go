package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/tknock/tknock/listener"
)

// sprayUsers is the number of users of the spray part (issue 15 item 2):
// with them, nearly every port of the range is an anchor.
const sprayUsers = 100_000

// sprayGrowth returns what the spray may add to the daemon's resident
// memory after its start with sprayUsers users of the bench user's
// parameters, by the parts of the tracker's memory estimate that the load
// fills: the deriver cache and the clock skew watches at their bounds, and
// the two anchor tables a daemon adds to the one it starts with as window
// boundaries pass (the next one, built ahead, and a spare: the spray and
// its knocks take a minute or two); and 16 MiB for the derivation budget's
// tables, the capture ring's pages and the Go heap's own jitter. A Deriver
// made anew at every miss and a Deriver per user at every table build grew
// the daemon by 130 MiB.
func (s *sys) sprayGrowth() int64 {
	us := make([]listener.User, sprayUsers)
	for i := range us {
		us[i] = listener.User{Name: fmt.Sprintf("spray%06d", i), Params: s.user.Params}
	}
	m := listener.EstimateMemory(listener.DefaultConfig(), us)
	return int64(m.Derivers+m.SkewWatches+2*m.Tables/3) + 16<<20
}

// spray is issue 15 item 2: 100 000 users (one service), one unspoofed
// source (the flooder's own address) spraying random ports of the whole
// knock range at the machine's maximum. Each knock after an anchor would
// derive the bound ports of dozens of candidates; the per-source budget
// bounds that. Rows: the share of the flood the daemon processed, 100
// legitimate knocks from other sources during it, and the daemon's RSS,
// against its start and against its memory_limit (benchMemoryLimit).
// The extra users are removed and the daemon restarted at the end.
func (s *sys) spray(ctx context.Context) (err error) {
	users := filepath.Join(s.work, "users")
	s.logf("spray: %d users, one source spraying the knock range", sprayUsers)
	var extra []string
	defer func() {
		for _, p := range extra {
			os.Remove(p)
		}
		if serr := s.stopDaemon(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	for i := 1; i < sprayUsers; i++ {
		_, path, err := writeEnrollment(users, fmt.Sprintf("spray%06d", i), srvCli4)
		if err != nil {
			return err
		}
		extra = append(extra, path)
	}
	if err := s.stopDaemon(); err != nil {
		return err
	}
	if err := s.startDaemon(ctx); err != nil {
		return err
	}
	_, idle, err := s.d.proc()
	if err != nil {
		return err
	}
	// The start's peak (loading 100 000 users files, then building their
	// table, before the heap is returned) is the memory_limit row's; the
	// growth row's peak is the spray's own.
	startPeak := idle.Peak
	if err := s.d.resetPeak(); err != nil {
		return err
	}
	pkts := []FloodPacket{{
		DstMAC: s.topo.srvAtkMAC, Dst: srvAtk4, Proto: s.user.Proto,
		Src: netip.MustParseAddr("198.51.100.2"), Ports: s.user.Range,
	}}
	res, err := s.measureFlood(ctx, pkts, 0)
	if err != nil {
		return err
	}
	ratio := res.processedRatio()
	s.t.Add(Row{Item: "15.2", Measure: fmt.Sprintf("%d users, one unspoofed source spraying the knock range, unlimited", sprayUsers),
		Result: res.result(), Target: ">= 99 % processed", Verdict: verdict(ratio >= 0.99)})

	// 100 knocks from other sources while the source sprays.
	const limit = 120 * time.Second
	fl, err := startFlood(ctx, floodSpec{NS: s.topo.atk, Ifname: ifPeer, Packets: pkts,
		Count: maxFloodPPS * int64(limit/time.Second), Limit: limit, Dir: s.work})
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	opened := 0
	var firstErr error
	for i := 0; i < s.o.Knocks && ctx.Err() == nil; i++ {
		// IPv4 while the pool has fresh addresses (a whole run's earlier
		// parts take most of them), then IPv6, crafted.
		src, err := s.topo.source(true)
		if err != nil {
			if src, err = s.topo.source(false); err != nil {
				fl.stop()
				return err
			}
		}
		if err := s.knock(ctx, src); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if _, err := s.opened(src, 2*time.Second); err == nil {
			opened++
		} else if firstErr == nil && !errors.Is(err, errNotOpened) {
			firstErr = err
		}
	}
	_, mem, perr := s.d.proc()
	if err := fl.stop(); err != nil {
		return err
	}
	if firstErr != nil {
		s.t.Note("knocks during the spray: the first error: %v", firstErr)
	}
	s.t.Add(Row{Item: "15.2", Measure: "legitimate knocks from other sources during the spray",
		Result: fmt.Sprintf("%d of %d opened", opened, s.o.Knocks), Target: ">= 100 of 100",
		Verdict: verdict(opened >= s.o.Knocks)})
	if perr != nil {
		return perr
	}
	growth := s.sprayGrowth()
	s.t.Add(Row{Item: "15.2", Measure: fmt.Sprintf("daemon memory after the spray (%s after its start with %d users)", fmtMiB(idle.RSS), sprayUsers),
		Result: fmt.Sprintf("RSS %s, peak (VmHWM) %s", fmtMiB(mem.RSS), fmtMiB(mem.Peak)),
		Target: "<= start + " + fmtMiB(growth), Verdict: verdict(mem.Peak <= idle.RSS+growth)})
	peak := max(startPeak, mem.Peak)
	s.t.Add(Row{Item: "15.2", Measure: fmt.Sprintf("RSS under the configured memory_limit (%d users: start, spray)", sprayUsers),
		Result: fmt.Sprintf("peak (VmHWM) %s (start %s, spray %s)", fmtMiB(peak), fmtMiB(startPeak), fmtMiB(mem.Peak)),
		Target: "<= " + fmtMiB(benchMemoryLimit), Verdict: verdict(peak <= benchMemoryLimit)})
	return nil
}
