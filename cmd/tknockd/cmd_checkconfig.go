package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/daemon"
	"github.com/tknock/tknock/nft"
)

type checkConfigCmd struct{}

// Run validates the configuration file and the users directory, checks
// that the configured interfaces exist and that the daemon's memory
// estimate fits in memory_limit, warns about a host firewall that would
// drop granted connections, says what the daemon would run with (the
// memory estimate and limit too), and shows the result of the running
// daemon's latest (re)load. A bad users file is a warning naming it, not a
// failure: the daemon leaves that user out and starts with the others
// (this command is the unit's ExecStartPre, and one bad file must not keep
// everyone out).
func (cmd *checkConfigCmd) Run(e *env) error {
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	users, uerr := config.LoadUsers(c)
	if errors.Is(uerr, config.ErrUsersDir) {
		return uerr
	}
	mem, err := daemon.CheckMemory(c, users)
	if err != nil {
		return err
	}
	ifaces := "all"
	if !c.AllInterfaces() {
		ifaces = strings.Join(c.Interfaces, ",")
		if err := c.CheckInterfaces(); err != nil {
			return err
		}
	}
	bad := daemon.Problems(uerr)
	for _, p := range bad {
		fmt.Fprintf(e.stderr, "tknockd: warning: %s: this user is left out until the file is fixed\n", p)
	}
	rejected := ""
	if len(bad) > 0 {
		rejected = fmt.Sprintf(" (%d users files rejected, see above)", len(bad))
	}
	// The host's own firewall, read only: warnings do not fail the check.
	if warnings, err := nft.CheckHost(c.NFT(users)); err != nil {
		fmt.Fprintf(e.stderr, "%s: note: host firewall not checked: %v\n", c.Path, err)
	} else {
		for _, w := range warnings {
			fmt.Fprintf(e.stderr, "%s: warning: %s\n", c.Path, w)
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %q, %d users in %s%s, services %s, interfaces %s, firewall %s%s\n",
		c.Path, c.Realm, len(users), c.UsersDir, rejected, strings.Join(c.ServiceNames(), ","), ifaces, c.Firewall.Mode, metricsSummary(c))
	fmt.Fprintf(e.stdout, "memory: %s\n", mem.Summary(c))
	writeStrength(e.stdout, c, users)
	writeDaemonState(e.stdout, c)
	return nil
}

// metricsSummary says where the metrics are served and how, or "".
func metricsSummary(c *config.Config) string {
	m := c.Metrics
	if m.Network == "" {
		return ""
	}
	s := fmt.Sprintf(", metrics on %s, published every %v", c.MetricsListen, m.Window)
	switch {
	case m.Network == "unix" && m.SocketGroup != "":
		s += " (socket mode 0660, group " + m.SocketGroup + ")"
	case m.Network == "unix":
		s += " (socket mode 0600)"
	case m.AllowRemote:
		s += " (allow_remote: reachable beyond loopback)"
	}
	if m.Debug {
		s += "; WARNING: metrics.debug publishes per-knock counters, an oracle of the anchor ports: for benchmarks only"
	}
	return s
}
