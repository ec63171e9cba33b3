package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
	tknockd "github.com/tknock/tknock/internal/daemon"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/totpseq"
)

func TestTableWriteTo(t *testing.T) {
	tb := &Table{Header: []string{"tknock benchmarks", "machine: 2 cores"}}
	tb.Add(Row{Item: "1", Measure: "decode + match", Result: "40 ns, 0 allocs", Target: "<= 100 ns", Verdict: Met})
	tb.Add(Row{Item: "1", Measure: "anchor table", Result: "1.2 s", Target: "< 1 s", Verdict: Missed})
	tb.Add(Row{Item: "2", Measure: "flood, no reader", Result: "offered 300 000 pps"})
	tb.Add(Row{Item: "3", Measure: "knocks", Result: "not measured", Target: ">= 99", Verdict: Missing})
	tb.Note("a note")
	var b bytes.Buffer
	if _, err := tb.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `tknock benchmarks
machine: 2 cores

#  measure           result               target     met
-  ----------------  -------------------  ---------  ---
1  decode + match    40 ns, 0 allocs      <= 100 ns  yes
1  anchor table      1.2 s                < 1 s      NO

2  flood, no reader  offered 300 000 pps

3  knocks            not measured         >= 99      n/a

targets met: 1, missed: 1, not measured: 1
note: a note
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteTo mismatch (-want +got):\n%s", diff)
	}
}

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/tknock/tknock/listener
cpu: AMD EPYC 7B13
BenchmarkDecode/ipv4-syn         	30000000	        39.5 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecodeMatch/users=1000
BenchmarkDecodeMatch/users=1000-2  	20000000	        61.25 ns/op	       0 B/op	       0 allocs/op
BenchmarkPipeline-2   	 1000	   1234567 ns/op	  12500000 pkts/s	       0 B/op	       0 allocs/op
--- FAIL: BenchmarkBroken
PASS
ok  	github.com/tknock/tknock/listener	12.3s
pkg: github.com/tknock/tknock/totpseq
BenchmarkSequence 	 1000000	      1050 ns/op
`

func TestParseGoBench(t *testing.T) {
	got, err := ParseGoBench(strings.NewReader(goBenchOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := []GoBench{
		{Pkg: "github.com/tknock/tknock/listener", Name: "Decode/ipv4-syn", Procs: 1, N: 30000000,
			Metrics: map[string]float64{"ns/op": 39.5, "B/op": 0, "allocs/op": 0}},
		{Pkg: "github.com/tknock/tknock/listener", Name: "DecodeMatch/users=1000", Procs: 2, N: 20000000,
			Metrics: map[string]float64{"ns/op": 61.25, "B/op": 0, "allocs/op": 0}},
		{Pkg: "github.com/tknock/tknock/listener", Name: "Pipeline", Procs: 2, N: 1000,
			Metrics: map[string]float64{"ns/op": 1234567, "pkts/s": 12500000, "B/op": 0, "allocs/op": 0}},
		{Pkg: "github.com/tknock/tknock/totpseq", Name: "Sequence", Procs: 1, N: 1000000,
			Metrics: map[string]float64{"ns/op": 1050}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseGoBench mismatch (-want +got):\n%s", diff)
	}
	if g, ok := FindGoBench(got, "totpseq", "Nope", "Sequence"); !ok || g.N != 1000000 {
		t.Errorf("FindGoBench(totpseq, Nope, Sequence) = %+v, %v; want the Sequence result", g, ok)
	}
	if _, ok := FindGoBench(got, "listener", "Sequence"); ok {
		t.Errorf("FindGoBench found Sequence in listener; it is in totpseq")
	}
}

func TestParseGoBenchErrors(t *testing.T) {
	for _, in := range []string{
		"BenchmarkX 12x 3 ns/op\n",
		"BenchmarkX 12 3 ns/op 4\n",
		"BenchmarkX 12 three ns/op\n",
	} {
		if _, err := ParseGoBench(strings.NewReader(in)); err == nil {
			t.Errorf("ParseGoBench(%q) = nil error, want one", in)
		} else if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseGoBench(%q) error %q does not name the line", in, err)
		}
	}
}

func TestHotRows(t *testing.T) {
	all := []GoBench{
		{Pkg: "x/listener", Name: "Knock/users=1", Metrics: map[string]float64{"ns/op": 140, "cpu-ns/op": 40, "allocs/op": 0}},
		{Pkg: "x/listener", Name: "Knock/users=1000", Metrics: map[string]float64{"ns/op": 42, "allocs/op": 0}},
		{Pkg: "x/listener", Name: "Knock/users=100000", Metrics: map[string]float64{"ns/op": 120, "allocs/op": 1}},
		{Pkg: "x/listener", Name: "Pipeline/users=1000", Metrics: map[string]float64{"ns/op": 200, "packets/cpu-s": 12.5e6}},
	}
	var tb Table
	hotRows(&tb, all)
	got := map[string]Verdict{}
	for _, r := range tb.Rows {
		got[r.Measure] = r.Verdict
	}
	want := map[string]Verdict{
		"decode + match per packet, 1 user":                                                        Met,
		"decode + match per packet, 1 000 users":                                                   Met,
		"decode + match per packet, 100 000 users":                                                 Missed,
		"per-packet cost, 100 000 users / 1 user":                                                  Missed, // 3x
		"anchor table rebuild, 100 000 users":                                                      Missing,
		"in-process pipeline, one core, users=1000 (frames -> decode -> tracker -> fake firewall)": Met, // 12.5 Mpps from ns/op
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hotRows verdicts mismatch (-want +got):\n%s", diff)
	}
	if r := tb.Rows[0].Result; r != "40.0 ns CPU (wall clock 140 ns), 0 allocs" {
		t.Errorf("per-packet result = %q, want the CPU time first", r)
	}
}

const promText = `# HELP tknockd_knock_packets_total Knock packets seen.
# TYPE tknockd_knock_packets_total counter
tknockd_knock_packets_total 12345
tknockd_capture_drops_total{interface="tkatk"} 7
tknockd_capture_drops_total{interface="tkcli",note="a \"quoted\", value"} 3
tknockd_tracked_sources 1e+06
tknockd_up NaN 1712345678000
`

func TestParseMetrics(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(promText))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Sum("tknockd_capture_drops_total"); !ok || v != 10 {
		t.Errorf("Sum(drops) = %v, %v; want 10, true", v, ok)
	}
	if v, ok := counter(m, metricKnocks); !ok || v != 12345 {
		t.Errorf("counter(knocks) = %v, %v; want 12345, true", v, ok)
	}
	if v, ok := counter(m, metricTracked); !ok || v != 1e6 {
		t.Errorf("counter(tracked) = %v, %v; want 1e6, true", v, ok)
	}
	if n, ok := m.Find("*drops*"); !ok || n != "tknockd_capture_drops_total" {
		t.Errorf("Find(*drops*) = %q, %v", n, ok)
	}
	if _, ok := m.Find("nothing_like_it"); ok {
		t.Errorf("Find(nothing_like_it) found something")
	}
	if m[2].Labels["note"] != `a "quoted", value` {
		t.Errorf("label note = %q, want the unescaped value", m[2].Labels["note"])
	}
	if v, _ := m.Sum("tknockd_up"); !math.IsNaN(v) {
		t.Errorf("tknockd_up = %v, want NaN", v)
	}
	for _, bad := range []string{"name_only\n", `x{a="b} 1` + "\n", "x{a=b} 1\n", "x one\n", "x 1 2 3\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMetrics(%q) = nil error, want one", bad)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := "4242 (tknockd (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0 18446744073709551615\n"
	ps, err := ParseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ProcStat{UTime: 2500 * time.Millisecond, STime: 750 * time.Millisecond, Threads: 9}); ps != want {
		t.Errorf("ParseProcStat = %+v, want %+v", ps, want)
	}
	if _, err := ParseProcStat("4242 (x) S 1 2"); err == nil {
		t.Error("ParseProcStat(short) = nil error")
	}
	status := "Name:\ttknockd\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nRssAnon:\t 16384 kB\nRssFile:\t  4096 kB\nThreads:\t9\n"
	pm, err := ParseProcStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ProcMem{RSS: 20 << 20, Peak: 40 << 20, Anon: 16 << 20, File: 4 << 20}); pm != want {
		t.Errorf("ParseProcStatus = %+v, want %+v", pm, want)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t1 MB\nVmHWM:\t1 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n", "VmRSS:\t1 kB\nVmHWM:\t1 kB\n"} {
		if _, err := ParseProcStatus(bad); err == nil {
			t.Errorf("ParseProcStatus(%q) = nil error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 50; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 25 * time.Millisecond}, {99, 50 * time.Millisecond}, {100, 50 * time.Millisecond}, {1, time.Millisecond}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("Percentile(1..50 ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if s[0] != 50*time.Millisecond {
		t.Error("Percentile sorted its argument in place")
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtCount(0), "0"},
		{fmtCount(999), "999"},
		{fmtCount(1000), "1 000"},
		{fmtCount(10000000), "10 000 000"},
		{fmtCount(-1234567), "-1 234 567"},
		{fmtRate(196049), "196 000 pps"},
		{fmtRate(5123.4), "5 123 pps"},
		{fmtMiB(3 << 20), "3.0 MiB"},
		{fmtPercent(0.99), "99.00 %"},
		{fmtMs(1500 * time.Microsecond), "1.500 ms"},
		{fmtNs(45.25), "45.2 ns"},
		{fmtNs(1234), "1234 ns"},
		{lastLines("a\n\nb\nc\n", 2), "b | c"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestTrafgenConfig(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	got, err := TrafgenConfig([]FloodPacket{
		{DstMAC: mac, Dst: netip.MustParseAddr("198.51.100.1"), Proto: inet.TCP,
			Src: netip.MustParseAddr("198.18.0.0"), RandomSrcBits: 16, Ports: totpseq.Range{Lo: 10000, Hi: 32767}},
		{DstMAC: mac, Dst: netip.MustParseAddr("2001:db8:2::1"), Proto: inet.UDP,
			Src: netip.MustParseAddr("2001:db8:f000:1::"), CountSrc: true, Ports: totpseq.Range{Lo: 12345, Hi: 12345}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  eth(da=02:00:00:00:00:01),
  ipv4(sa=198.18.0.0, sa[2]=drnd(), sa[3]=drnd(), da=198.51.100.1, ttl=64),
  tcp(sp=drnd(1024, 65535), dp=drnd(10000, 32767), seq=drnd(), syn, win=64240)
}
{
  eth(da=02:00:00:00:00:01),
  ipv6(sa=2001:db8:f000:1::, sa=dinc(), da=2001:db8:2::1, hoplimit=64),
  udp(sp=drnd(1024, 65535), dp=12345),
  "knock"
}
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TrafgenConfig mismatch (-want +got):\n%s", diff)
	}
}

func TestTrafgenConfigErrors(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	ok := FloodPacket{DstMAC: mac, Dst: netip.MustParseAddr("192.0.2.1"), Src: netip.MustParseAddr("198.18.0.0"),
		Proto: inet.TCP, Ports: totpseq.Range{Lo: 1000, Hi: 2000}}
	for _, c := range []struct {
		name   string
		change func(*FloodPacket)
		want   string
	}{
		{"mac", func(p *FloodPacket) { p.DstMAC = nil }, "destination MAC"},
		{"family", func(p *FloodPacket) { p.Src = netip.MustParseAddr("2001:db8::1") }, "different families"},
		{"proto", func(p *FloodPacket) { p.Proto = 1 }, "protocol 1"},
		{"ports", func(p *FloodPacket) { p.Ports = totpseq.Range{Lo: 2000, Hi: 1000} }, "port range"},
		{"bits", func(p *FloodPacket) { p.RandomSrcBits = 12 }, "random source bits 12"},
		{"count4", func(p *FloodPacket) { p.CountSrc = true }, "counting sources needs IPv6"},
	} {
		p := ok
		c.change(&p)
		_, err := TrafgenConfig([]FloodPacket{p})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: TrafgenConfig error = %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := TrafgenConfig(nil); err == nil {
		t.Error("TrafgenConfig(nil) = nil error")
	}
}

func TestDaemonConfig(t *testing.T) {
	c := daemonConfig{UsersDir: "/tmp/x/users", Interfaces: []string{"tkcli", "tkatk"},
		Host: netip.MustParseAddr("192.0.2.1"), OpenFor: 5 * time.Second, MemoryLimit: benchMemoryLimit}
	var got map[string]any
	if err := toml.Unmarshal([]byte(c.TOML()), &got); err != nil {
		t.Fatalf("the configuration is not valid TOML: %v\n%s", err, c.TOML())
	}
	want := map[string]any{
		"realm":        benchRealm,
		"users_dir":    "/tmp/x/users",
		"interfaces":   []any{"tkcli", "tkatk"},
		"open_for":     "5s",
		"memory_limit": "512MiB",
		"enroll":       map[string]any{"host": "192.0.2.1"},
		"services":     map[string]any{"ssh": []any{"tcp/2222"}},
		"firewall":     map[string]any{"mode": "table", "table": "tknock", "drop_knocks": true},
		"log":          map[string]any{"level": "info", "format": "json"},
		"metrics":      map[string]any{"listen": metricsAddr, "debug": true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

// TestBenchMemoryLimit: the daemon of the spray part, with sprayUsers
// users, fits under benchMemoryLimit with a quarter to spare (its
// estimate, as tknockd computes it), so that it starts and its row
// measures the runtime's soft limit at work rather than a refusal.
func TestBenchMemoryLimit(t *testing.T) {
	host := netip.MustParseAddr("192.0.2.1")
	c := daemonConfig{UsersDir: "/tmp/x/users", Interfaces: []string{"tkcli", "tkatk"}, Host: host, MemoryLimit: benchMemoryLimit}
	cfg, err := config.Parse("/tmp/x/tknockd.toml", []byte(c.TOML()))
	if err != nil {
		t.Fatal(err)
	}
	users := make([]*totpseq.Enrollment, sprayUsers)
	for i := range users {
		p := totpseq.Defaults()
		p.Length = 5
		p.Realm = benchRealm
		p.Services = []string{benchService}
		p.Secret = make(totpseq.Secret, totpseq.DefaultSecretSize)
		users[i] = &totpseq.Enrollment{Name: fmt.Sprintf("spray%06d", i), Host: host.String(), Params: p}
	}
	mem, err := tknockd.CheckMemory(cfg, users)
	if err != nil {
		t.Fatal(err)
	}
	if est := mem.Total(); est*5/4 > benchMemoryLimit {
		t.Errorf("%d users: estimate %d MiB, want a quarter under benchMemoryLimit (%d MiB)", sprayUsers, est>>20, benchMemoryLimit>>20)
	}
	t.Logf("%d users: %s", sprayUsers, mem.Summary(cfg))
}

func TestWriteEnrollmentAndAnchors(t *testing.T) {
	dir := t.TempDir()
	e, path, err := writeEnrollment(dir, "bench", netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	back, err := enrollfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.URI() != e.URI() || back.Realm != benchRealm || !back.HasService(benchService) {
		t.Errorf("read back %s: realm %q services %v, want the written enrollment", path, back.Realm, back.Services)
	}
	now := time.Unix(1_700_000_000, 0)
	got, err := anchorPorts(&e.Params, benchService, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := totpseq.Window(now, e.Period)
	var want []uint16
	for _, win := range []uint64{w - 1, w, w + 1} {
		seq, err := totpseq.Sequence(&e.Params, benchService, win, netip.MustParseAddr("203.0.113.9"))
		if err != nil {
			t.Fatal(err)
		}
		if !contains(want, seq[0]) {
			want = append(want, seq[0])
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("anchorPorts mismatch with the sequences' first ports (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench.uri")); err != nil {
		t.Error(err)
	}
}

func contains(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestParseLogEvent(t *testing.T) {
	for _, c := range []struct {
		line string
		want logEvent
		ok   bool
	}{
		{`{"level":"info","message":"ready"}`, logEvent{Event: "ready", Message: "ready"}, true},
		{`{"level":"info","event":"open","user":"bench","service":"ssh","src":"192.0.2.10","offset":0}`,
			logEvent{Event: "open", User: "bench", Src: "192.0.2.10"}, true},
		{`{"level":"info","message":"metrics listening"}`, logEvent{}, false},
		{`not json`, logEvent{}, false},
		{`{"event":`, logEvent{}, false},
	} {
		got, ok := parseLogEvent([]byte(c.line))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseLogEvent(%s) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestParseLogEventDelay(t *testing.T) {
	ev, ok := parseLogEvent([]byte(`{"level":"info","event":"open","src":"192.0.2.9","delay_ms":0.213,"message":"access opened"}`))
	if !ok || ev.Event != "open" || ev.DelayMs == nil || *ev.DelayMs != 0.213 {
		t.Errorf("parseLogEvent of an open line with delay_ms = %+v, %v; want event open, delay 0.213", ev, ok)
	}
	ev, _ = parseLogEvent([]byte(`{"event":"open","src":"192.0.2.9"}`))
	if ev.DelayMs != nil {
		t.Errorf("parseLogEvent of an open line without delay_ms: delay %v, want none", *ev.DelayMs)
	}
}

func TestOptions(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--only", "hot,bogus"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `unknown part "bogus"`) {
		t.Errorf("run(--only hot,bogus) = %v, want an error naming the part", err)
	}
	err = run(context.Background(), []string{"--duration", "1h"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--duration") {
		t.Errorf("run(--duration 1h) = %v, want an error naming the flag", err)
	}
	// --help prints the help and runs nothing: no table, no results.
	out.Reset()
	errOut.Reset()
	results := t.TempDir()
	if err := run(context.Background(), []string{"--help", "--results", results}, &out, &errOut); err != nil {
		t.Errorf("run(--help) = %v, want nil", err)
	}
	if !strings.Contains(out.String(), "--trials") || strings.Contains(errOut.String(), "knockbench:") {
		t.Errorf("run(--help): stdout %q, stderr %q; want the help and nothing run", out.String(), errOut.String())
	}
	if ents, _ := os.ReadDir(results); len(ents) != 0 {
		t.Errorf("run(--help) wrote %d files in the results directory", len(ents))
	}
}

// TestBenchRegexps: each candidate benchmark is selected by one of the two
// patterns, level by level as go test matches them, and the idle grant,
// the capture floods and the other decode cases by neither.
func TestBenchRegexps(t *testing.T) {
	withSubs, plain := benchRegexps()
	selected := func(name string) bool {
		levels := strings.Split(name, "/")
		for _, p := range []string{withSubs, plain} {
			pats := strings.Split(p, "$/")
			if len(pats) > 1 && len(levels) == 1 || len(pats) == 1 && len(levels) > 1 {
				continue // two levels never run a benchmark without sub-benchmarks
			}
			ok := true
			for i, l := range levels[:min(len(levels), len(pats))] {
				pat := pats[i]
				if i < len(pats)-1 {
					pat += "$"
				}
				if !regexp.MustCompile(pat).MatchString(l) {
					ok = false
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
	for _, n := range []string{"Knock/users=1", "Knock/users=100000", "AnchorBuild/cold/users=100000", "Pipeline/users=1000", "Decode/v4syn", "Sequence", "Allow/new"} {
		if !selected("Benchmark" + n) {
			t.Errorf("Benchmark%s not selected by %q or %q", n, withSubs, plain)
		}
	}
	for _, n := range []string{"Allow/idle", "Decode/v6udp", "CaptureFlood/v4-syn-udp", "TrackerKnock/users=1", "Allow"} {
		if selected("Benchmark" + n) {
			t.Errorf("Benchmark%s selected by %q or %q", n, withSubs, plain)
		}
	}
}

func TestMedians(t *testing.T) {
	g := func(pkg, name string, ns float64) GoBench {
		return GoBench{Pkg: pkg, Name: name, Metrics: map[string]float64{"ns/op": ns}}
	}
	got := Medians([]GoBench{g("l", "Knock", 90), g("l", "Knock", 120), g("n", "Allow", 30), g("l", "Knock", 85), g("n", "Allow", 20)})
	if len(got) != 2 || got[0].Name != "Knock" || got[0].Metrics["ns/op"] != 90 || got[1].Name != "Allow" || got[1].Metrics["ns/op"] != 20 {
		t.Errorf("Medians = %+v; want Knock 90 (median of 85, 90, 120), then Allow 20 (lower middle of 20, 30)", got)
	}
}

func TestKnockdSetup(t *testing.T) {
	k := knockdSetup{Interface: "tkcli", Sequence: []uint16{7001, 8002, 9003}, LogFile: "/tmp/k.log"}
	want := "[options]\n\tLogFile = /tmp/k.log\n\tInterface = tkcli\n\n" +
		"[bench]\n\tsequence = 7001,8002,9003\n\tseq_timeout = 5\n\ttcpflags = syn\n" +
		"\tcommand = nft add element inet knockd allowed { %IP% }\n"
	if diff := cmp.Diff(want, k.Config()); diff != "" {
		t.Errorf("knockd.conf (-want +got):\n%s", diff)
	}
	rs := k.Ruleset()
	for _, line := range []string{"table inet knockd {", "type ipv4_addr", "tcp dport 2223 ip saddr @allowed accept", "tcp dport 2223 drop"} {
		if !strings.Contains(rs, line) {
			t.Errorf("knockd's ruleset lacks %q:\n%s", line, rs)
		}
	}
	if knockdPort == protectedPort {
		t.Error("knockd guards tknockd's port")
	}
}

func TestLossRuleset(t *testing.T) {
	rs := lossRuleset(totpseq.Range{Lo: 10000, Hi: 32767})
	if !strings.Contains(rs, "type filter hook output priority filter;") ||
		!strings.Contains(rs, "tcp dport 10000-32767 numgen random mod 10 < 1 counter drop") {
		t.Errorf("loss ruleset: want an output hook dropping one knock packet in ten:\n%s", rs)
	}
}

func TestFastRatio(t *testing.T) {
	ms := func(v ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x*float64(time.Millisecond)))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		tk, kd []time.Duration
		ok     bool
		ratio  float64
	}{
		{"a third", ms(10, 10, 10), ms(30, 30, 30), true, 1.0 / 3},
		{"more than a third", ms(11, 11, 11), ms(30, 30, 30), false, 11.0 / 30},
		{"a tknock trial failed", ms(5, 5), ms(30, 30, 30), false, 5.0 / 30},
		{"knockd never opened", ms(5, 5, 5), nil, false, 0},
	} {
		ok, ratio := fastRatio(tc.tk, tc.kd, 3)
		if ok != tc.ok || math.Abs(ratio-tc.ratio) > 1e-9 {
			t.Errorf("%s: fastRatio = %v, %v; want %v, %v", tc.name, ok, ratio, tc.ok, tc.ratio)
		}
	}
	if got := describeSamples(ms(3, 1, 2), 4); got != "median 2.000 ms (min 1.000 ms, max 3.000 ms), 3 of 4 opened" {
		t.Errorf("describeSamples = %q", got)
	}
	if got := describeSamples(nil, 10); got != "none of 10 opened" {
		t.Errorf("describeSamples of nothing = %q", got)
	}
}

func TestParseSocketMaps(t *testing.T) {
	smaps := `00400000-009e9000 r-xp 00000000 fe:00 9986961                            /usr/local/bin/tknockd
Size:               6052 kB
Rss:                5168 kB
7f84da5fd000-7f84da7fd000 rw-s 00000000 00:09 2110642                    socket:[2110642]
Size:               2048 kB
Rss:                2048 kB
7f84da7fd000-7f84da9fd000 rw-s 00000000 00:09 2110643                    socket:[2110643]
Size:               2048 kB
Rss:                1024 kB
16d9a800000-16d9ae00000 rw-p 00000000 00:00 0 
Rss:                2836 kB
`
	n, rss, err := ParseSocketMaps(smaps)
	if err != nil || n != 2 || rss != 3072<<10 {
		t.Errorf("ParseSocketMaps = %d, %d, %v; want 2 rings, 3 MiB", n, rss, err)
	}
}
