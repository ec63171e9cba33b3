package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of samples by the
// nearest-rank method: the smallest sample such that at least p % of the
// samples are less than or equal to it. It returns 0 for no samples.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// fmtCount formats n with a space between groups of three digits,
// "1 000 000", as the issue writes its figures.
func fmtCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtRate formats a rate in packets per second, to the nearest hundred
// above ten thousand (the floods are not steadier than that).
func fmtRate(pps float64) string {
	if pps >= 10000 {
		pps = math.Round(pps/100) * 100
	}
	return fmtCount(int64(math.Round(pps))) + " pps"
}

// fmtMiB formats a byte count in MiB with one decimal.
func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// fmtPercent formats a ratio (0.5 is "50.00 %").
func fmtPercent(r float64) string { return fmt.Sprintf("%.2f %%", 100*r) }

// fmtMs formats a duration in milliseconds with three decimals.
func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// fmtNs formats nanoseconds per operation.
func fmtNs(ns float64) string {
	if ns >= 100 {
		return fmt.Sprintf("%.0f ns", ns)
	}
	return fmt.Sprintf("%.1f ns", ns)
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if t := strings.TrimSpace(l); len(t) > 0 {
			lines = append(lines, t)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
