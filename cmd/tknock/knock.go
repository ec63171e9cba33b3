package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// knockCmd is `tknock knock [PROFILE|HOST] [SERVICE]`, the default command.
type knockCmd struct {
	Target  string `arg:"" optional:"" placeholder:"PROFILE|HOST" help:"Profile name, or the host of a profile (default: the only profile). With --enrollment: the host to knock at."`
	Service string `arg:"" optional:"" help:"Service to open (default: the enrollment's first)."`
	knockFlags
	Host        string        `help:"Knock at this host (name or address) instead of the profile's."`
	Wait        uint16        `placeholder:"PORT" xor:"wait" help:"Confirm with TCP PORT instead of the port the enrollment names for the service (its check= parameter)."`
	NoWait      bool          `name:"no-wait" xor:"wait" help:"Knock and exit at once, without confirming that the door opened."`
	WaitTimeout time.Duration `default:"5s" help:"How long to wait for the door to open."`
}

// Run knocks, then, unless --no-wait, connects to the service's check port
// (re-knocking as --reknock-after says) and says whether the door opened:
// the exit status is 0 only when it did, or when nothing can confirm it (a
// UDP service, no port known), which it says.
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
		l, err = a.profile(ctx, c.Target)
	}
	if err != nil {
		return err
	}
	rs, err := a.knock(ctx, l, host, c.Service, &c.knockFlags)
	var note error
	if errors.Is(err, client.ErrWindowsUsed) {
		note = err
	} else if err != nil {
		return err
	}
	r := rs[0]
	check, why := c.checkPort(l.Enrollment, r.Service)
	switch {
	case c.NoWait && note != nil:
		return fmt.Errorf("%s: service %s: %w; without --no-wait, tknock checks whether it is", l.from, r.Service, note)
	case c.NoWait:
		return nil
	case why != "" && note != nil:
		return fmt.Errorf("%s: service %s: %w; %s", l.from, r.Service, note, why)
	case why != "":
		fmt.Fprintf(a.stdout, "%s: knocked for %s; %s\n", r.Host, r.Service, why)
		return nil
	}
	if note != nil {
		a.log.Debug().Err(note).Msg("no knock; checking the door opened before")
	}
	conn, took, err := a.wait(ctx, l, rs, check, c.WaitTimeout, &c.knockFlags, a.reknock(l, host, c.Service, &c.knockFlags), note)
	if err != nil {
		return err
	}
	conn.Close()
	earlier := ""
	if note != nil {
		earlier = ", opened by an earlier knock"
	}
	fmt.Fprintf(a.stdout, "%s: %s is open (port %d accepted a connection after %v%s)\n",
		r.Host, r.Service, check, took.Round(time.Millisecond), earlier)
	return nil
}

// checkPort returns the TCP port that confirms service opened: --wait, or
// the enrollment's (or profile's) check port. When there is none it says
// why not, for the user.
func (c *knockCmd) checkPort(e *totpseq.Enrollment, service string) (uint16, string) {
	if c.Wait != 0 {
		return c.Wait, ""
	}
	cp, ok := e.CheckFor(service)
	switch {
	case !ok:
		return 0, "not confirmed: the enrollment names no port to check for " + service +
			" (give one with --wait PORT, or store it: tknock enroll --check-port " + service + ":PORT --force ...)"
	case cp.Proto != inet.TCP:
		return 0, fmt.Sprintf("not confirmed: %s is a UDP service (%s/%d), and only a TCP port can show that the door opened", service, cp.Proto, cp.Port)
	}
	return cp.Port, ""
}
