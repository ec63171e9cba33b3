// Command knockbench measures tknock as the benchmark issue asks and prints
// one table: the hot path (Go benchmarks of the listener package), the
// capture under a spoofed-source flood, legitimate knocks under the largest
// flood, the open latency, the daemon's memory under ten million spoofed
// sources, and issue 17's figures (command to open against knockd, knocks
// under loss, bound ports in reverse order). `make bench` builds the
// binaries and runs it as root; the table also goes to
// bench/results/<UTC time>.txt with the daemon's log beside it.
//
// Every network it builds is a set of namespaces it creates and deletes
// (also on failure and Ctrl-C); every flood is bounded in packets and time.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "knockbench:", err)
		os.Exit(1)
	}
}

// Parts of a run, in the order.
var allParts = []string{"hot", "rings", "capture", "flood", "latency", "memory", "host", "fast", "spray"}

// options are the command line.
type options struct {
	Bin        string        `default:"bin" help:"Directory holding the tknockd and tknock binaries (make build)."`
	Results    string        `default:"bench/results" help:"Directory for the result table and the daemon's log."`
	Go         string        `default:"go" help:"The go command, for the hot-path benchmarks."`
	Only       []string      `sep:"," help:"Run only these parts: hot, rings, capture, flood, latency, memory, host, fast, spray (default: all)."`
	Benchtime  string        `default:"1s" help:"go test -benchtime for the hot-path benchmarks."`
	Duration   time.Duration `default:"10s" help:"How long each flood rate lasts."`
	Rates      []int64       `default:"50000,100000,200000" sep:"," help:"Flood rates (packets/s) measured before the unlimited one; rates above 90 % of the no-reader maximum are skipped."`
	Knocks     int           `default:"100" help:"Legitimate knocks under the largest flood."`
	Trials     int           `default:"50" help:"Open-latency trials."`
	Sources    int64         `default:"10000000" help:"Distinct spoofed sources in the memory flood."`
	DaemonCPUs string        `name:"daemon-cpus" placeholder:"LIST" help:"Pin the daemon to these CPUs (taskset list, e.g. 1); by default the scheduler places it. The flood's sender is always on CPU 0."`
}

func (o *options) want(part string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, part) }

func (o *options) validate() error {
	for _, p := range o.Only {
		if !slices.Contains(allParts, p) {
			return fmt.Errorf("--only: unknown part %q (want some of %s)", p, strings.Join(allParts, ", "))
		}
	}
	switch {
	case o.Duration < 2*time.Second || o.Duration > time.Minute:
		return fmt.Errorf("--duration %v: want 2s..1m", o.Duration)
	case o.Knocks < 1 || o.Knocks > 200:
		return fmt.Errorf("--knocks %d: want 1..200 (each needs a fresh client address)", o.Knocks)
	case o.Trials < 1 || o.Trials > 200:
		return fmt.Errorf("--trials %d: want 1..200", o.Trials)
	case o.Sources < 1_000_000 || o.Sources > 50_000_000:
		return fmt.Errorf("--sources %d: want 1 000 000..50 000 000", o.Sources)
	}
	for _, r := range o.Rates {
		if r < 1000 || r > 10_000_000 {
			return fmt.Errorf("--rates: %d packets/s: want 1000..10000000", r)
		}
	}
	if o.DaemonCPUs != "" && strings.Trim(o.DaemonCPUs, "0123456789,-") != "" {
		return fmt.Errorf("--daemon-cpus %q: want a CPU list such as 1 or 0-1", o.DaemonCPUs)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	exited := false // kong printed the help and would have exited
	parser, err := kong.New(&o, kong.Name("knockbench"),
		kong.Description("Measure tknock (the hot path, the capture under a flood, open latency, memory) and print one table. Needs root."),
		kong.Writers(stdout, stderr), kong.Exit(func(int) { exited = true }))
	if err != nil {
		return err
	}
	_, err = parser.Parse(args)
	if exited {
		return nil
	}
	if err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Results, 0o755); err != nil {
		return err
	}
	start := time.Now().UTC()
	stamp := start.Format("20060102T150405Z")
	t := &Table{Header: header(start, o.Go)}
	load0 := loadAverage()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "knockbench: "+format+"\n", a...) }

	if o.want("hot") {
		logf("hot path: go test -bench in listener, totpseq and nft")
		hotPath(ctx, &o, t, logf)
	}
	if o.want("rings") && ctx.Err() == nil {
		logf("rings: the listener's capture flood benchmarks, pure-Go ring and gopacket's cgo ring")
		rings(ctx, &o, t, logf)
	}
	if ctx.Err() == nil && slices.ContainsFunc(allParts[2:], o.want) {
		if err := runSystem(ctx, &o, t, filepath.Join(o.Results, stamp), logf); err != nil {
			t.Note("system benchmarks stopped: %v", err)
		}
	}
	t.Header = append(t.Header, fmt.Sprintf("run time: %v; load average (1, 5, 15 min) at the start %s, at the end %s",
		time.Since(start).Round(time.Second), load0, loadAverage()))
	path := filepath.Join(o.Results, stamp+".txt")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := t.WriteTo(io.MultiWriter(stdout, f)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	logf("table written to %s", path)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

// header describes the machine and the code measured.
func header(start time.Time, goCmd string) []string {
	h := []string{"tknock benchmarks, " + start.Format(time.RFC3339)}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "kernel " + strings.TrimSpace(string(b))
	}
	h = append(h, fmt.Sprintf("machine: %s/%s, %s, %d cores, %s", runtime.GOOS, runtime.GOARCH, kernel, runtime.NumCPU(), cpuModel()))
	if out, err := exec.Command(goCmd, "version").Output(); err == nil {
		h = append(h, "go: "+strings.TrimSpace(string(out)))
	}
	rev := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			rev += " (with uncommitted changes)"
		}
	}
	return append(h, "commit: "+rev)
}

// loadAverage returns the first three fields of /proc/loadavg: other work
// on a shared machine lowers the flood rates, and this shows how much
// there was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// errorResult shortens an error for the table's result column; the whole
// error goes into a note.
func errorResult(t *Table, what string, err error) string {
	t.Note("%s: %v", what, err)
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 60 {
		msg = msg[:57] + "..."
	}
	return "error: " + msg
}
