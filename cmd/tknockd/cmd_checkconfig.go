package main

import (
	"fmt"
	"net"
	"strings"
)

type checkConfigCmd struct{}

// Run validates the configuration file and the users directory, and says
// what the daemon would run with. Interfaces that do not exist on this
// machine are reported as warnings: the file may be checked elsewhere.
func (cmd *checkConfigCmd) Run(e *env) error {
	c, err := loadConfig(e.cli.Config)
	if err != nil {
		return err
	}
	users, err := loadUsers(c)
	if err != nil {
		return err
	}
	ifaces := "all"
	if !c.AllInterfaces() {
		ifaces = strings.Join(c.Interfaces, ",")
		for _, name := range c.Interfaces {
			if _, err := net.InterfaceByName(name); err != nil {
				fmt.Fprintf(e.stderr, "warning: interface %q does not exist here: tknockd run would stop\n", name)
			}
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %q, %d users in %s, services %s, interfaces %s, firewall %s\n",
		c.Path, c.Realm, len(users), c.UsersDir, strings.Join(c.ServiceNames(), ","), ifaces, c.Firewall.Mode)
	return nil
}
