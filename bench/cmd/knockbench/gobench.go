package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// GoBench is one result line of `go test -bench -benchmem`.
type GoBench struct {
	Pkg     string             // import path, from the "pkg:" line before the result
	Name    string             // full name without the "Benchmark" prefix and the -N GOMAXPROCS suffix
	Procs   int                // GOMAXPROCS suffix; 1 when absent
	N       int                // iterations
	Metrics map[string]float64 // by unit: "ns/op", "B/op", "allocs/op", and custom units (b.ReportMetric)
}

// Metric returns the value reported with unit and whether it was reported.
func (g GoBench) Metric(unit string) (float64, bool) {
	v, ok := g.Metrics[unit]
	return v, ok
}

// ParseGoBench reads the output of `go test -bench` and returns its result
// lines in order. Other lines (goos:, PASS, ok, logs) are skipped. A line
// that starts like a result but does not parse is an error naming the line.
func ParseGoBench(r io.Reader) ([]GoBench, error) {
	var out []GoBench
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// A name alone on its line is what `go test -v` prints before a
		// sub-benchmark's result, or a benchmark that failed or was skipped.
		if len(f) < 2 {
			continue
		}
		g, err := parseGoBenchLine(f)
		if err != nil {
			return nil, fmt.Errorf("go test output line %d: %q: %w", lineNo, line, err)
		}
		g.Pkg = pkg
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go test output: %w", err)
	}
	return out, nil
}

func parseGoBenchLine(f []string) (GoBench, error) {
	g := GoBench{Name: strings.TrimPrefix(f[0], "Benchmark"), Procs: 1, Metrics: map[string]float64{}}
	if i := strings.LastIndexByte(g.Name, '-'); i > 0 {
		if p, err := strconv.Atoi(g.Name[i+1:]); err == nil && p > 0 {
			g.Name, g.Procs = g.Name[:i], p
		}
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return GoBench{}, fmt.Errorf("iterations %q: not a number", f[1])
	}
	g.N = n
	rest := f[2:]
	if len(rest)%2 != 0 {
		return GoBench{}, fmt.Errorf("%d fields after the iterations: want value-unit pairs", len(rest))
	}
	for i := 0; i < len(rest); i += 2 {
		v, err := strconv.ParseFloat(rest[i], 64)
		if err != nil {
			return GoBench{}, fmt.Errorf("value %q of %s: not a number", rest[i], rest[i+1])
		}
		g.Metrics[rest[i+1]] = v
	}
	return g, nil
}

// FindGoBench returns the first result of a package whose import path
// ends with pkg, named by one of names (tried in order); ok is false when
// there is none.
func FindGoBench(all []GoBench, pkg string, names ...string) (GoBench, bool) {
	for _, n := range names {
		for _, g := range all {
			if g.Name == n && strings.HasSuffix(g.Pkg, pkg) {
				return g, true
			}
		}
	}
	return GoBench{}, false
}

// Medians keeps one result per package and name: of repeated runs
// (-count), the one with the median ns/op (the lower middle of an even
// count), in the order of first appearance.
func Medians(all []GoBench) []GoBench {
	type key struct{ pkg, name string }
	runs := map[key][]GoBench{}
	var order []key
	for _, g := range all {
		k := key{g.Pkg, g.Name}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = append(runs[k], g)
	}
	out := make([]GoBench, 0, len(order))
	for _, k := range order {
		rs := runs[k]
		slices.SortStableFunc(rs, func(a, b GoBench) int { return cmp.Compare(a.Metrics["ns/op"], b.Metrics["ns/op"]) })
		out = append(out, rs[(len(rs)-1)/2])
	}
	return out
}
