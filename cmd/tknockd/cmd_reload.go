package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tknock/tknock/internal/daemon"
)

type reloadCmd struct {
	Wait time.Duration `default:"30s" help:"How long to wait for the daemon's answer."`
}

// Run asks the running daemon of the configuration file to reload
// (SIGHUP), waits until its state file shows the result, prints it, and
// fails when the reload did (deploy/tknockd.service's ExecReload: so
// systemctl reload reports a failed reload). The daemon is found by its
// state file, which names the configuration file: a configuration that no
// longer loads can still be reloaded, so that revocations apply.
func (cmd *reloadCmd) Run(e *env) error {
	path, err := filepath.Abs(e.cli.Config)
	if err != nil {
		return err
	}
	dir := daemon.RuntimeDir()
	before, err := findState(dir, path)
	if err != nil {
		return err
	}
	if err := syscall.Kill(before.PID, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal tknockd (pid %d): %w", before.PID, err)
	}
	deadline := time.Now().Add(cmd.Wait)
	for {
		st, err := findState(dir, path)
		if err == nil && (st.PID != before.PID || st.Seq > before.Seq) {
			fmt.Fprintln(e.stdout, st.Summary())
			if st.PID != before.PID || !st.OK {
				return silentError{errors.New("reload failed")}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tknockd (pid %d) did not report the reload within %v (see its log: journalctl -u tknockd)", before.PID, cmd.Wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findState returns the state of the running daemon of the configuration
// file path, from the state files in dir.
func findState(dir, path string) (*daemon.State, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st daemon.State
		if json.Unmarshal(data, &st) == nil && st.Config == path && st.Running() {
			return &st, nil
		}
	}
	return nil, fmt.Errorf("no running tknockd for %s (no state file of one in %s): start it: systemctl start tknockd",
		path, cmp.Or(dir, "."))
}
