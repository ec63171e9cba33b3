package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a running tknockd inside the server namespace.
type daemon struct {
	cmd    *exec.Cmd
	ns     *netns
	http   *http.Client
	exited chan struct{} // closed when the process has exited
	err    error         // the process's exit error, valid after exited

	mu     sync.Mutex // guards the fields below
	ready  bool
	opened map[netip.Addr]int           // opening events by source
	delay  map[netip.Addr]time.Duration // the delay of the latest opening of a source, when logged
	tail   []string                     // the last log lines, for error messages
}

// startDaemon starts `tknockd run --config cfg` in ns, on the CPUs listed
// in cpus (taskset's list format; "" leaves it to the scheduler). Its log
// lines are copied to logPath and watched for the "ready" and "open"
// events.
func startDaemon(bin string, ns *netns, cfg, logPath, cpus string) (*daemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{
		ns:     ns,
		exited: make(chan struct{}),
		opened: map[netip.Addr]int{},
		delay:  map[netip.Addr]time.Duration{},
		http: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DialContext: ns.dialer(), DisableKeepAlives: true},
		},
	}
	if cpus == "" {
		d.cmd = ns.command(context.Background(), bin, "run", "--config", cfg)
	} else {
		// taskset executes the daemon in its own place: the PID is the daemon's.
		d.cmd = ns.command(context.Background(), "taskset", "-c", cpus, bin, "run", "--config", cfg)
	}
	// Its state file beside its log, not in the host's /run/tknockd.
	d.cmd.Env = append(d.cmd.Environ(), "RUNTIME_DIRECTORY="+filepath.Join(filepath.Dir(cfg), "run"))
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		pw.Close()
		close(d.exited)
	}()
	go d.readLog(pr, logf)
	return d, nil
}

// readLog copies the daemon's output to logf and records the events the
// harness waits for. It always drains the pipe, so a busy daemon never
// blocks on its log.
func (d *daemon) readLog(r io.Reader, logf *os.File) {
	defer logf.Close()
	w := bufio.NewWriterSize(logf, 64<<10)
	defer w.Flush()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		w.Write(line)
		w.WriteByte('\n')
		ev, ok := parseLogEvent(line)
		d.mu.Lock()
		if len(d.tail) >= 20 {
			d.tail = d.tail[1:]
		}
		d.tail = append(d.tail, string(line))
		if ok {
			switch ev.Event {
			case "ready":
				d.ready = true
			case "open":
				if a, err := netip.ParseAddr(ev.Src); err == nil {
					d.opened[a.Unmap()]++
					if ev.DelayMs != nil {
						d.delay[a.Unmap()] = time.Duration(*ev.DelayMs * float64(time.Millisecond))
					}
				}
			}
		}
		d.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// logTail returns the last lines the daemon logged.
func (d *daemon) logTail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// waitReady waits until the daemon has logged "ready".
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		ready := d.ready
		d.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("tknockd exited before it was ready: %v; its last lines:\n%s", d.err, d.logTail())
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("tknockd not ready after %v; its last lines:\n%s", timeout, d.logTail())
		case <-tick.C:
		}
	}
}

// openedFor returns how many openings the daemon logged for src.
func (d *daemon) openedFor(src netip.Addr) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opened[src.Unmap()]
}

// delayFor returns the delay the daemon logged with its latest opening for
// src, waiting up to a second for the line.
func (d *daemon) delayFor(src netip.Addr) (time.Duration, bool) {
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		v, ok := d.delay[src.Unmap()]
		d.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return v, ok
		}
	}
}

// stop ends the daemon with SIGTERM, then SIGKILL after 5 seconds.
func (d *daemon) stop() error {
	select {
	case <-d.exited:
		return nil
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		return errors.New("tknockd did not stop within 5 s of SIGTERM; killed")
	}
}

// pid returns the daemon's process ID (ip netns exec executes it in its
// own place).
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// proc reads the daemon's CPU time and memory.
func (d *daemon) proc() (ProcStat, ProcMem, error) {
	p := strconv.Itoa(d.pid())
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return ProcStat{}, ProcMem{}, err
	}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return ProcStat{}, ProcMem{}, err
	}
	ps, err := ParseProcStat(string(stat))
	if err != nil {
		return ProcStat{}, ProcMem{}, err
	}
	pm, err := ParseProcStatus(string(status))
	return ps, pm, err
}

// resetPeak sets the daemon's peak resident size (VmHWM) to its current
// one (proc(5), clear_refs "5"), so that a later peak is the peak of what
// happened since, not of the daemon's start.
func (d *daemon) resetPeak() error {
	return os.WriteFile("/proc/"+strconv.Itoa(d.pid())+"/clear_refs", []byte("5"), 0)
}

// scrape reads the daemon's metrics endpoint.
func (d *daemon) scrape(ctx context.Context) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// settle waits until the daemon has read everything the kernel queued for
// it: until the knock counter has not moved for 300 ms (at most 5 s), and
// returns the last scrape.
func (d *daemon) settle(ctx context.Context) (Metrics, error) {
	deadline := time.Now().Add(5 * time.Second)
	var last float64 = -1
	stableSince := time.Now()
	for {
		m, err := d.scrape(ctx)
		if err != nil {
			return nil, err
		}
		v, ok := counter(m, metricKnocks)
		if !ok {
			return m, nil
		}
		if v != last {
			last, stableSince = v, time.Now()
		}
		if time.Since(stableSince) >= 300*time.Millisecond || time.Now().After(deadline) {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
