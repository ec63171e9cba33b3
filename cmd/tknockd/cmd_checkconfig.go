package main

import (
	"fmt"
	"strings"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/nft"
)

type checkConfigCmd struct{}

// Run validates the configuration file and the users directory, checks
// that the configured interfaces exist, warns about a host firewall that
// would drop granted connections, and says what the daemon would run with.
func (cmd *checkConfigCmd) Run(e *env) error {
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	users, err := config.LoadUsers(c)
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
	// The host's own firewall, read only: warnings do not fail the check.
	if warnings, err := nft.CheckHost(c.NFT(users)); err != nil {
		fmt.Fprintf(e.stderr, "%s: note: host firewall not checked: %v\n", c.Path, err)
	} else {
		for _, w := range warnings {
			fmt.Fprintf(e.stderr, "%s: warning: %s\n", c.Path, w)
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %q, %d users in %s, services %s, interfaces %s, firewall %s%s\n",
		c.Path, c.Realm, len(users), c.UsersDir, strings.Join(c.ServiceNames(), ","), ifaces, c.Firewall.Mode, metricsSummary(c))
	writeStrength(e.stdout, c, users)
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
