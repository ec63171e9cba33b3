package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tknock/tknock/client"
)

// knockCmd is `tknock knock [PROFILE|HOST] [SERVICE]`, the default command.
type knockCmd struct {
	Target  string `arg:"" optional:"" placeholder:"PROFILE|HOST" help:"Profile name, or the host of a profile (default: the only profile). With --enrollment: the host to knock at."`
	Service string `arg:"" optional:"" help:"Service to open (default: the enrollment's first)."`
	knockFlags
	Host        string        `help:"Knock at this host (name or address) instead of the profile's."`
	Wait        uint16        `placeholder:"PORT" help:"Then wait until TCP PORT accepts a connection, and print how long it took."`
	WaitTimeout time.Duration `default:"5s" help:"How long --wait waits."`
}

func (c *knockCmd) Run(ctx context.Context, a *app) error {
	var l *loaded
	var err error
	host := c.Host
	if c.Enrollment != "" {
		l, err = a.readEnrollment(c.Enrollment)
		if host == "" {
			host = c.Target
		}
	} else {
		l, err = a.profile(c.Target)
	}
	if err != nil {
		return err
	}
	rs, err := a.knock(ctx, l, host, c.Service, &c.knockFlags)
	var note error
	if errors.Is(err, client.ErrWindowsUsed) {
		if c.Wait == 0 {
			return fmt.Errorf("%s: service %s: %w", l.from, rs[0].Service, err)
		}
		a.log.Debug().Err(err).Msg("no knock; waiting for the door opened before")
		note = err
	} else if err != nil {
		return err
	}
	if c.Wait == 0 {
		return nil
	}
	conn, took, err := a.wait(ctx, l, rs, c.Wait, c.WaitTimeout, &c.knockFlags, a.reknock(l, host, c.Service, &c.knockFlags), note)
	if err != nil {
		return err
	}
	conn.Close()
	fmt.Fprintf(a.stdout, "%s port %d open after %v\n", rs[0].Host, c.Wait, took.Round(time.Millisecond))
	return nil
}
