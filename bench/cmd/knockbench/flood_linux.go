package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// flood is a running trafgen. Every flood is bounded twice: by its packet
// count (-n) and by a deadline after which it is interrupted.
type flood struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// floodSpec says what to send and how much of it.
type floodSpec struct {
	NS      *netns
	Ifname  string
	Packets []FloodPacket
	Count   int64         // packets in all; required
	Rate    int64         // packets per second; 0 is as fast as trafgen can
	Limit   time.Duration // interrupted after this long; required
	Dir     string        // where the configuration file is written
}

// startFlood starts trafgen on CPU 0 (one sender, so counters run in one
// sequence, and the other core is left to the daemon). trafgen is
// told not to tune the machine's socket memory or IRQ affinity, which
// are not the namespace's to change.
func startFlood(ctx context.Context, s floodSpec) (*flood, error) {
	if s.Count <= 0 || s.Limit <= 0 {
		return nil, fmt.Errorf("flood: unbounded (count %d, limit %v)", s.Count, s.Limit)
	}
	conf, err := TrafgenConfig(s.Packets)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.Dir, "trafgen-*.cfg")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	args := []string{"--no-sock-mem", "--notouch-irq", "--no-cpu-stats", "--cpus", "1",
		"--dev", s.Ifname, "--conf", path, "--num", strconv.FormatInt(s.Count, 10)}
	if s.Rate > 0 {
		args = append(args, "--rate", strconv.FormatInt(s.Rate, 10)+"pps")
	}
	fctx, cancel := context.WithTimeout(ctx, s.Limit)
	fl := &flood{done: make(chan struct{}), cancel: cancel}
	// taskset executes trafgen in its own place: the PID is trafgen's.
	fl.cmd = s.NS.command(fctx, "taskset", append([]string{"-c", "0", "trafgen"}, args...)...)
	// trafgen sends from a child process, which a SIGINT to the parent
	// alone does not stop: trafgen runs in a process group of its own,
	// and the whole group is interrupted (as Ctrl-C in a terminal does),
	// and killed if anything of it is left when the parent has exited.
	fl.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fl.cmd.Cancel = func() error { return syscall.Kill(-fl.cmd.Process.Pid, syscall.SIGINT) }
	fl.cmd.WaitDelay = 3 * time.Second
	fl.cmd.Stdout, fl.cmd.Stderr = &fl.out, &fl.out
	if err := fl.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start trafgen: %w", err)
	}
	go func() {
		defer os.Remove(path)
		defer cancel()
		err := fl.cmd.Wait()
		syscall.Kill(-fl.cmd.Process.Pid, syscall.SIGKILL)
		// An interruption at the deadline is how a flood by time ends.
		if err != nil && fctx.Err() != nil && ctx.Err() == nil {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("trafgen: %v: %s", err, lastLines(fl.out.String(), 5))
		}
		fl.err = err
		close(fl.done)
	}()
	return fl, nil
}

// wait waits for the flood to end and returns its error.
func (f *flood) wait() error {
	<-f.done
	return f.err
}

// stop interrupts the flood and waits for it.
func (f *flood) stop() error {
	f.cancel()
	return f.wait()
}

// writeFile writes data to dir/name.
func writeFile(dir, name, data string, perm os.FileMode) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(data), perm)
}
