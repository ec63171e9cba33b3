package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/daemon"
	"github.com/tknock/tknock/nft"
)

type statusCmd struct{}

// Run prints the live grants as the kernel holds them, with the time left,
// then the result of the daemon's latest start or reload.
func (cmd *statusCmd) Run(e *env) error {
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	t, err := nft.Open(c.NFT(nil))
	if err != nil {
		return err
	}
	defer t.Close()
	grants, err := t.Grants()
	if errors.Is(err, nft.ErrMissing) {
		writeDaemonState(e.stderr, c)
		if c.Firewall.External != nil {
			return fmt.Errorf("the sets of %s are missing from this network namespace's ruleset: add them (see [firewall.external] in deploy/tknockd.toml), then restart the daemon: systemctl restart tknockd",
				daemon.Instance(c))
		}
		return fmt.Errorf("%s does not exist in this network namespace, so the protected ports are not closed: "+
			"the daemon builds it when it starts: systemctl start tknockd (or restart it if it runs)", daemon.Instance(c))
	}
	if err != nil {
		return err
	}
	if err := writeGrants(e, c, grants); err != nil {
		return err
	}
	writeDaemonState(e.stdout, c)
	return nil
}

func writeGrants(e *env, c *config.Config, grants []nft.Grant) error {
	if len(grants) == 0 {
		fmt.Fprintln(e.stdout, "no live grants")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tENDPOINT\tSERVICE\tEXPIRES IN")
	for _, g := range grants {
		var svcs []string
		for _, name := range c.ServiceNames() {
			if slices.Contains(c.Services[name].Endpoints, g.Endpoint) {
				svcs = append(svcs, name)
			}
		}
		left := "never"
		if g.Timeout != 0 {
			left = g.Remaining.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%s\n", g.Src, g.Endpoint, cmp.Or(strings.Join(svcs, ","), "-"), left)
	}
	return tw.Flush()
}
