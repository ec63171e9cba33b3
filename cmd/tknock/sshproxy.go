package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/tknock/tknock/client"
)

// sshProxyCmd is `tknock ssh-proxy HOST PORT`, for ssh's ProxyCommand.
type sshProxyCmd struct {
	Host    string `arg:"" help:"Host to reach (ssh's %h): a profile's host or name."`
	Port    uint16 `arg:"" help:"TCP port to connect to (ssh's %p)."`
	Service string `help:"Service to open (default: ssh when the enrollment has it, else its first)."`
	Profile string `help:"Use this profile, and knock at and connect to HOST itself."`
	knockFlags
	WaitTimeout time.Duration `default:"10s" help:"How long to wait for the port to accept a connection."`
}

func (c *sshProxyCmd) Run(ctx context.Context, a *app) error {
	var l *loaded
	var err error
	host := c.Host
	switch {
	case c.Enrollment != "":
		l, err = a.readEnrollment(c.Enrollment)
	case c.Profile != "":
		l, err = a.profile(ctx, c.Profile)
	default:
		// HOST may be a profile's name rather than a resolvable host:
		// knock at the profile's host. An address (found by the
		// addresses of the profile's host) is knocked at as it is.
		if l, err = a.profile(ctx, c.Host); err == nil && l.Host != "" && !isAddr(c.Host) {
			host = ""
		}
	}
	if err != nil {
		return err
	}
	service := c.Service
	if service == "" && l.HasService("ssh") {
		service = "ssh"
	}
	rs, err := a.knock(ctx, l, host, service, &c.knockFlags)
	var note error
	if errors.Is(err, client.ErrWindowsUsed) {
		// Two knocks in this window already: the door one of them opened
		// may still be open.
		a.log.Debug().Err(err).Msg("no knock; trying the door opened before")
		note = err
	} else if err != nil {
		return err
	}
	conn, took, err := a.wait(ctx, l, rs, c.Port, c.WaitTimeout, &c.knockFlags, a.reknock(l, host, service, &c.knockFlags), note)
	if err != nil {
		return err
	}
	a.log.Debug().Dur("took", took).Msg("connected")
	return client.Pipe(ctx, conn, a.stdin, a.stdout)
}

// isAddr reports whether host is an IP address (IPv6 in brackets or not).
func isAddr(host string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil
}
