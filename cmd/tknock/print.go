package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/totpseq"
)

// printCmd is `tknock print`: the ports of one sequence, for conformance
// checks and debugging. It is the only command that shows ports.
type printCmd struct {
	Enrollment string `placeholder:"FILE" xor:"enrollment" required:"" help:"Enrollment file (\"-\": standard input)."`
	Profile    string `xor:"enrollment" required:"" help:"Profile to use instead of --enrollment."`
	Service    string `help:"Service (default: the enrollment's first)."`
	Source     string `required:"" placeholder:"ADDR" help:"Source address bound into the sequence."`
	At         *int64 `placeholder:"UNIX_SECONDS" help:"Time of the sequence, Unix seconds (default: now)."`
}

func (c *printCmd) Run(ctx context.Context, a *app) error {
	var l *loaded
	var err error
	if c.Enrollment != "" {
		l, err = a.readEnrollment(c.Enrollment)
	} else {
		l, err = a.profile(ctx, c.Profile)
	}
	if err != nil {
		return err
	}
	src, err := netip.ParseAddr(c.Source)
	if err != nil {
		return fmt.Errorf("--source %q: not an IP address", c.Source)
	}
	at := a.time()
	if c.At != nil {
		if *c.At < 0 {
			return fmt.Errorf("--at %d: must not be negative", *c.At)
		}
		at = time.Unix(*c.At, 0)
	}
	service, err := client.Service(l.Enrollment, c.Service)
	if err != nil {
		return fmt.Errorf("%s: %w", l.from, err)
	}
	ports, err := totpseq.Sequence(&l.Params, service, totpseq.Window(at, l.Period), src)
	if err != nil {
		return fmt.Errorf("%s: %w", l.from, err)
	}
	if len(ports) == 0 {
		return errors.New("empty sequence")
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	_, err = fmt.Fprintln(a.stdout, strings.Join(s, " "))
	return err
}
