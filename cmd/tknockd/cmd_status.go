package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/nft"
)

type statusCmd struct{}

// Run prints the live grants as the kernel holds them, with the time left.
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
	if err != nil {
		return err
	}
	return writeGrants(e, c, grants)
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
