package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat is what the harness reads of /proc/PID/stat.
type ProcStat struct {
	UTime, STime time.Duration // CPU time in user and kernel mode
	Threads      int
}

// CPU returns the total CPU time.
func (p ProcStat) CPU() time.Duration { return p.UTime + p.STime }

// ParseProcStat parses the contents of /proc/PID/stat. The command name
// (field 2) is in parentheses and may itself contain spaces and
// parentheses, so the fields are counted from the last ')'.
func ParseProcStat(data string) (ProcStat, error) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("proc stat: no ')' after the command name")
	}
	// After ')': field 3 (state) onwards; utime is field 14, stime 15,
	// num_threads 20.
	f := strings.Fields(data[i+1:])
	const first = 3
	if len(f) < 20-first+1 {
		return ProcStat{}, fmt.Errorf("proc stat: %d fields after the command name, want at least %d", len(f), 20-first+1)
	}
	field := func(n int) (int64, error) {
		v, err := strconv.ParseInt(f[n-first], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: field %d: %q is not a number", n, f[n-first])
		}
		return v, nil
	}
	ut, err := field(14)
	if err != nil {
		return ProcStat{}, err
	}
	st, err := field(15)
	if err != nil {
		return ProcStat{}, err
	}
	th, err := field(20)
	if err != nil {
		return ProcStat{}, err
	}
	tick := time.Second / clockTicks
	return ProcStat{UTime: time.Duration(ut) * tick, STime: time.Duration(st) * tick, Threads: int(th)}, nil
}

// ProcMem is what the harness reads of /proc/PID/status, in bytes.
type ProcMem struct {
	RSS  int64 // VmRSS: resident set now
	Peak int64 // VmHWM: the largest resident set so far
	Anon int64 // RssAnon: the resident heap, stacks and other private memory
	File int64 // RssFile: resident pages of mapped files (the binary)
}

// ParseProcStatus parses the VmRSS, VmHWM, RssAnon and RssFile lines of
// /proc/PID/status.
func ParseProcStatus(data string) (ProcMem, error) {
	var m ProcMem
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	seen := 0
	for line := range strings.Lines(data) {
		key, val, ok := strings.Cut(line, ":")
		dst, want := fields[key]
		if !ok || !want {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return ProcMem{}, fmt.Errorf("proc status: %s: %q: want a number of kB", key, strings.TrimSpace(val))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return ProcMem{}, fmt.Errorf("proc status: %s: %q is not a number", key, f[0])
		}
		*dst = kb << 10
		seen++
	}
	if seen != len(fields) {
		return ProcMem{}, fmt.Errorf("proc status: want VmRSS, VmHWM, RssAnon and RssFile lines (is the process a zombie?)")
	}
	return m, nil
}

// ParseSocketMaps sums, from /proc/PID/smaps, the resident memory of the
// process's socket mappings (tknockd's: the capture rings, one per
// capture) and counts them.
func ParseSocketMaps(smaps string) (n int, rss int64, err error) {
	inSocket := false
	for line := range strings.Lines(smaps) {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			inSocket = len(f) >= 6 && strings.HasPrefix(f[5], "socket:[")
			if inSocket {
				n++
			}
			continue
		}
		if inSocket && len(f) == 3 && f[0] == "Rss:" && f[2] == "kB" {
			kb, perr := strconv.ParseInt(f[1], 10, 64)
			if perr != nil {
				return 0, 0, fmt.Errorf("proc smaps: Rss: %q is not a number", f[1])
			}
			rss += kb << 10
		}
	}
	return n, rss, nil
}
