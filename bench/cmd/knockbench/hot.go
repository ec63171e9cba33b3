package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The Go benchmarks the table reads, written beside the code they measure
// (listener: decoder and tracker; totpseq: derivation; nft: a grant). The
// harness only runs and reads them. Each row names candidates, tried in
// order, so a renamed benchmark shows up as "not measured" with the names
// that do exist, rather than as a wrong figure.
var (
	benchPackages = []string{"./listener/", "./totpseq/", "./nft/"}

	// Per packet: decode one frame and match it in the tracker, by the
	// number of enrolled users.
	benchPerPacket = map[int][]string{
		1:       {"Knock/users=1"},
		1000:    {"Knock/users=1000"},
		100_000: {"Knock/users=100000"},
	}
	benchAnchorBuild = []string{"AnchorBuild/cold/users=100000"}
	benchAnchorNext  = []string{"AnchorBuild/next/users=100000"}
	benchPipeline    = []string{"Pipeline/users=1000", "Pipeline/users=1"}
	benchDecode      = []string{"Decode/v4syn", "Decode/ipv4-syn", "Decode"}
	benchSequence    = []string{"Sequence"}
	benchAllow       = []string{"Allow/new"}
	// A lone grant after a quiet spell: its own run with a fixed count,
	// since each op also sleeps 20 ms (off the clock).
	benchAllowIdle = []string{"Allow/idle"}
)

// hotPath runs the Go benchmarks on one core (-cpu 1) and adds the rows of
// item 1 and the in-process pipeline row of item 2.
func hotPath(ctx context.Context, o *options, t *Table, logf func(string, ...any)) {
	var out, errOut bytes.Buffer
	gotest := func(pattern, benchtime, count string, pkgs ...string) error {
		// -p 1: one package's benchmarks at a time, or they share the cores.
		args := []string{"test", "-p", "1", "-run", "^$", "-bench", pattern, "-benchmem", "-count", count, "-cpu", "1",
			"-benchtime", benchtime, "-timeout", "10m"}
		cmd := exec.CommandContext(ctx, o.Go, append(args, pkgs...)...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		return cmd.Run()
	}
	began := time.Now()
	withSubs, plain := benchRegexps()
	// Three runs of each, the median kept: one run on this kind of shared
	// machine moves by 5-10 %.
	runErr := errors.Join(gotest(withSubs, o.Benchtime, "3", benchPackages...), gotest(plain, o.Benchtime, "3", benchPackages...),
		gotest("^BenchmarkAllow$/^idle$", "50x", "1", "./nft/"))
	logf("hot path: go test took %v", time.Since(began).Round(time.Second))
	all, err := ParseGoBench(&out)
	if err != nil {
		t.Add(Row{Item: "1", Measure: "Go benchmarks", Result: errorResult(t, "go test -bench output", err), Verdict: Missing})
		return
	}
	if runErr != nil {
		// Some packages may have failed to build or a benchmark failed;
		// the rows that did run are still read.
		t.Note("go test -bench: %v: %s", runErr, lastLines(errOut.String()+out.String(), 8))
	}
	t.Note("hot-path rows: the median of three runs of each Go benchmark")
	hotRows(t, Medians(all))
}

// benchRegexps match the benchmarks that hold the candidates and no
// other: those with sub-benchmarks by name and sub-benchmark (the
// listener's capture floods are run by rings; the other decode cases and
// the idle grant are left out), and, apart, those without (a two-level
// pattern never runs a benchmark that has no sub-benchmarks).
func benchRegexps() (withSubs, plain string) {
	var tops, subs, flat []string
	add := func(names []string) {
		for _, n := range names {
			top, rest, _ := strings.Cut(n, "/")
			if rest == "" {
				if !slices.Contains(flat, top) {
					flat = append(flat, top)
				}
				continue
			}
			if !slices.Contains(tops, top) {
				tops = append(tops, top)
			}
			if sub, _, _ := strings.Cut(rest, "/"); !slices.Contains(subs, regexp.QuoteMeta(sub)) {
				subs = append(subs, regexp.QuoteMeta(sub))
			}
		}
	}
	for _, users := range []int{1, 1000, 100_000} {
		add(benchPerPacket[users])
	}
	for _, names := range [][]string{benchAnchorBuild, benchAnchorNext, benchPipeline, benchDecode, benchSequence, benchAllow} {
		add(names)
	}
	// A name in both lists (Decode: its sub-benchmark or, in an older
	// tree, itself) stays in the two-level pattern only.
	flat = slices.DeleteFunc(flat, func(n string) bool { return slices.Contains(tops, n) })
	return "^Benchmark(" + strings.Join(tops, "|") + ")$/^(" + strings.Join(subs, "|") + ")$",
		"^Benchmark(" + strings.Join(flat, "|") + ")$"
}

// rings runs the listener's capture flood benchmarks: the pure-Go
// TPACKET_V3 ring and gopacket's cgo afpacket ring reading the same
// bounded trafgen flood (built with cgo and the cgobench tag, for this
// comparison only), and adds their rows to item 2.
func rings(ctx context.Context, o *options, t *Table, logf func(string, ...any)) {
	args := []string{"test", "-tags", "cgobench", "-run", "^$", "-bench", "^Benchmark(CaptureFlood|AfpacketFlood)$/^v4-syn-udp$",
		"-benchtime", "1x", "-count", "1", "-timeout", "5m", "./listener/"}
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	began := time.Now()
	runErr := cmd.Run()
	logf("rings: go test took %v", time.Since(began).Round(time.Second))
	all, err := ParseGoBench(&out)
	if err == nil && runErr != nil {
		err = fmt.Errorf("%v: %s", runErr, lastLines(errOut.String()+out.String(), 8))
	}
	if err != nil {
		t.Note("capture ring benchmarks: %v", err)
	}
	ringRows(t, all)
}

// ringRows adds the rows of the ring benchmarks.
func ringRows(t *Table, all []GoBench) {
	var offered [2]float64
	for i, r := range []struct{ name, what string }{
		{"CaptureFlood/v4-syn-udp", "pure-Go TPACKET_V3 ring (tknockd's)"},
		{"AfpacketFlood/v4-syn-udp", "gopacket afpacket ring (cgo)"},
	} {
		measure := "capture ring alone, 1 000 000-frame flood: " + r.what
		g, ok := FindGoBench(all, "listener", r.name)
		if !ok {
			t.Add(Row{Item: "2", Measure: measure, Result: "not measured", Verdict: Missing})
			continue
		}
		off, _ := g.Metric("offered-pps")
		read, _ := g.Metric("read-pps")
		drops, _ := g.Metric("kernel-drops")
		offered[i] = off
		t.Add(Row{Item: "2", Measure: measure,
			Result: fmt.Sprintf("offered %s, read %s, kernel drops %s", fmtRate(off), fmtRate(read), fmtCount(int64(drops)))})
	}
	if offered[0] > 0 && offered[1] > 0 {
		t.Add(Row{Item: "2", Measure: "rate offered with the pure-Go ring / with gopacket's cgo ring",
			Result: fmtPercent(offered[0] / offered[1])})
	}
}

// perOp returns a benchmark's cost per operation, preferring the CPU time
// per operation where the benchmark reports it ("cpu-ns/op"): on a shared
// machine the wall clock also counts the time other work held the CPU.
func perOp(g GoBench) (float64, string) {
	ns, _ := g.Metric("ns/op")
	if cpu, ok := g.Metric("cpu-ns/op"); ok && cpu > 0 {
		return cpu, fmt.Sprintf("%s CPU (wall clock %s)", fmtNs(cpu), fmtNs(ns))
	}
	return ns, fmtNs(ns)
}

// hotRows adds the rows read from the benchmark results.
func hotRows(t *Table, all []GoBench) {
	anyMissing := false
	missing := func(item, measure, target string, names []string) {
		anyMissing = true
		t.Add(Row{Item: item, Measure: measure, Result: "not measured", Target: target, Verdict: Missing})
		t.Note("%s: none of the benchmarks %s ran", measure, strings.Join(names, ", "))
	}
	var perUser = map[int]float64{}
	for _, users := range []int{1, 1000, 100_000} {
		measure := fmt.Sprintf("decode + match per packet, %s users", fmtCount(int64(users)))
		if users == 1 {
			measure = "decode + match per packet, 1 user"
		}
		g, ok := FindGoBench(all, "listener", benchPerPacket[users]...)
		if !ok {
			missing("1", measure, "<= 100 ns, 0 allocs", benchPerPacket[users])
			continue
		}
		ns, res := perOp(g)
		allocs, hasAllocs := g.Metric("allocs/op")
		perUser[users] = ns
		t.Add(Row{Item: "1", Measure: measure,
			Result:  fmt.Sprintf("%s, %g allocs", res, allocs),
			Target:  "<= 100 ns, 0 allocs",
			Verdict: verdict(ns <= 100 && hasAllocs && allocs == 0)})
	}
	if a, b := perUser[1], perUser[100_000]; a > 0 && b > 0 {
		t.Add(Row{Item: "1", Measure: "per-packet cost, 100 000 users / 1 user",
			Result: fmt.Sprintf("%.2fx", b/a), Target: "flat: <= 1.5x", Verdict: verdict(b/a <= 1.5)})
	}
	if g, ok := FindGoBench(all, "listener", benchAnchorBuild...); ok {
		ns, _ := g.Metric("ns/op")
		d := time.Duration(ns)
		t.Add(Row{Item: "1", Measure: "anchor table rebuild, 100 000 users",
			Result: fmtMs(d), Target: "well under 1 s", Verdict: verdict(d < time.Second)})
	} else {
		missing("1", "anchor table rebuild, 100 000 users", "well under 1 s", benchAnchorBuild)
	}
	if g, ok := FindGoBench(all, "listener", benchAnchorNext...); ok {
		ns, _ := g.Metric("ns/op")
		t.Add(Row{Item: "1", Measure: "anchor table for the next window, built ahead, 100 000 users", Result: fmtMs(time.Duration(ns))})
	}
	if g, ok := FindGoBench(all, "listener", benchDecode...); ok {
		ns, _ := g.Metric("ns/op")
		allocs, _ := g.Metric("allocs/op")
		t.Add(Row{Item: "1", Measure: "decode alone (" + g.Name + ")", Result: fmt.Sprintf("%s, %g allocs", fmtNs(ns), allocs)})
	}
	if g, ok := FindGoBench(all, "totpseq", benchSequence...); ok {
		ns, _ := g.Metric("ns/op")
		t.Add(Row{Item: "1", Measure: "one sequence derivation (HMAC-SHA256)", Result: fmtNs(ns)})
	}
	if g, ok := FindGoBench(all, "nft", benchAllow...); ok {
		ns, _ := g.Metric("ns/op")
		t.Add(Row{Item: "1", Measure: "one nftables grant (netlink round trip)", Result: fmtMs(time.Duration(ns))})
	}
	if g, ok := FindGoBench(all, "nft", benchAllowIdle...); ok {
		ns, _ := g.Metric("ns/op")
		t.Add(Row{Item: "1", Measure: "one nftables grant after 20 ms of quiet (a lone opening)", Result: fmtMs(time.Duration(ns))})
	}
	if g, ok := FindGoBench(all, "listener", benchPipeline...); ok {
		wall, ok := g.Metric("packets/s")
		if ns, _ := g.Metric("ns/op"); !ok && ns > 0 {
			wall = 1e9 / ns
		}
		pps, res := wall, fmtRate(wall)
		if cpu, ok := g.Metric("packets/cpu-s"); ok && cpu > 0 {
			pps, res = cpu, fmtRate(cpu)+" per CPU second (wall clock: "+fmtRate(wall)+")"
		}
		t.Add(Row{Item: "2", Measure: "in-process pipeline, one core, " + strings.TrimPrefix(g.Name, "Pipeline/") + " (frames -> decode -> tracker -> fake firewall)",
			Result: res, Target: ">= 10 000 000 pps", Verdict: verdict(pps >= 10_000_000)})
	} else {
		missing("2", "in-process pipeline, one core", ">= 10 000 000 pps", benchPipeline)
	}
	if anyMissing {
		var names []string
		for _, g := range all {
			names = append(names, g.Name)
		}
		t.Note("Go benchmarks run: %s", strings.Join(names, ", "))
	}
}
