package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/daemon"
)

// writeDaemonState writes what the daemon of c last reported of its start
// or latest reload (its state file), or why there is nothing to show.
func writeDaemonState(w io.Writer, c *config.Config) {
	dir := daemon.RuntimeDir()
	st, err := daemon.ReadState(dir, c)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(w, "daemon: no state in %s: tknockd is not running for %s (start it: systemctl start tknockd)\n", dir, daemon.Instance(c))
	case err != nil:
		fmt.Fprintf(w, "daemon: state unreadable: %v\n", err)
	case !st.Running():
		fmt.Fprintf(w, "daemon: not running (pid %d has ended; start it: systemctl start tknockd); before it ended, its %s\n", st.PID, st.Summary())
	default:
		fmt.Fprintf(w, "daemon: %s\n", st.Summary())
	}
}
