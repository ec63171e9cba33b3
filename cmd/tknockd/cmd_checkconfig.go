package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/daemon"
)

type checkConfigCmd struct{}

// Run validates the configuration file and the users directory, checks
// that the configured interfaces exist, says what the daemon would run
// with, and shows the result of the running daemon's latest (re)load. A
// bad users file is a warning naming it, not a failure: the daemon leaves
// that user out and starts with the others (this command is the unit's
// ExecStartPre, and one bad file must not keep everyone out).
func (cmd *checkConfigCmd) Run(e *env) error {
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	users, uerr := config.LoadUsers(c)
	if errors.Is(uerr, config.ErrUsersDir) {
		return uerr
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
	fmt.Fprintf(e.stdout, "%s: ok: realm %q, %d users in %s%s, services %s, interfaces %s, firewall %s\n",
		c.Path, c.Realm, len(users), c.UsersDir, rejected, strings.Join(c.ServiceNames(), ","), ifaces, c.Firewall.Mode)
	writeDaemonState(e.stdout, c)
	return nil
}
