package daemon

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/nft"
)

// DefaultRuntimeDir is where the daemon writes its state file when
// $RUNTIME_DIRECTORY is not set: deploy/tknockd.service has
// RuntimeDirectory=tknockd, which makes systemd create it for the
// daemon's user and set $RUNTIME_DIRECTORY to it.
const DefaultRuntimeDir = "/run/tknockd"

// RuntimeDir is the directory of the daemon's state files:
// $RUNTIME_DIRECTORY (its first entry), else DefaultRuntimeDir.
func RuntimeDir() string {
	if d, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":"); d != "" {
		return d
	}
	return DefaultRuntimeDir
}

// Instance names what one daemon owns for configuration c: its nftables
// table ("table inet tknock"), or in external mode the administrator's
// table it adds grants to ("external inet filter"). One daemon per
// instance runs in a network namespace.
func Instance(c *config.Config) string {
	if ext := c.Firewall.External; ext != nil {
		return "external " + ext.Family + " " + ext.Table
	}
	return "table inet " + cmp.Or(c.Firewall.Table, nft.DefaultTable)
}

// StatePath is the state file of c's daemon in dir.
func StatePath(dir string, c *config.Config) string {
	return filepath.Join(dir, strings.ReplaceAll(Instance(c), " ", "-")+".json")
}

// State is what the daemon writes to its state file at start and after
// every reload: who it is and how the latest (re)load went.
type State struct {
	PID      int       `json:"pid"`
	Instance string    `json:"instance"`
	Config   string    `json:"config"`
	Seq      uint64    `json:"seq"`   // 0 at start, then one more at each reload
	Event    string    `json:"event"` // "start" or "reload"
	Time     time.Time `json:"time"`
	OK       bool      `json:"ok"` // nothing was wrong
	// Applied says what of the configuration file and the users directory
	// is in force after this (re)load.
	Applied string   `json:"applied"`
	Users   int      `json:"users"`            // users in force
	Errors  []string `json:"errors,omitempty"` // every problem, one each
}

// Summary is the state in a few lines for a person: the result on the
// first line, then each problem.
func (s *State) Summary() string {
	var b strings.Builder
	what := "start"
	if s.Event == "reload" {
		what = "reload"
	}
	res := "ok"
	switch {
	case !s.OK && s.Event == "reload":
		res = "FAILED"
	case !s.OK:
		res = "started WITH ERRORS"
	}
	fmt.Fprintf(&b, "last %s of tknockd (pid %d) at %s: %s: %s, %d users in force",
		what, s.PID, s.Time.Format(time.DateTime), res, s.Applied, s.Users)
	for _, e := range s.Errors {
		b.WriteString("\n  " + strings.ReplaceAll(e, "\n", "\n  "))
	}
	return b.String()
}

// ReadState reads the state file of c's daemon in dir. An error wrapping
// fs.ErrNotExist means no daemon wrote one (none ran since boot).
func ReadState(dir string, c *config.Config) (*State, error) {
	data, err := os.ReadFile(StatePath(dir, c))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(dir, c), err)
	}
	return &s, nil
}

// Running reports whether s's daemon still runs (its pid is alive).
func (s *State) Running() bool {
	return s.PID > 0 && processAlive(s.PID)
}

// writeState writes s to its file in dir atomically (a reader never sees
// half of it).
func writeState(dir string, c *config.Config, s *State) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := StatePath(dir, c)
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(append(data, '\n'))
	err = errors.Join(err, tmp.Chmod(0o644), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Problems splits a joined error into its problems, one string each
// (nil: none).
func Problems(errs ...error) []string {
	var out []string
	for _, err := range errs {
		if err == nil {
			continue
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			out = append(out, Problems(j.Unwrap()...)...)
			continue
		}
		out = append(out, err.Error())
	}
	return out
}
