package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

type checkConfigCmd struct{}

// Run validates the configuration file and the users directory, checks
// that the configured interfaces exist, and says what the daemon would run
// with.
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
		if err := checkInterfaces(c); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok: realm %q, %d users in %s, services %s, interfaces %s, firewall %s\n",
		c.Path, c.Realm, len(users), c.UsersDir, strings.Join(c.ServiceNames(), ","), ifaces, c.Firewall.Mode)
	return nil
}

// checkInterfaces returns an error naming every configured interface that
// does not exist.
func checkInterfaces(c *Config) error {
	var errs []error
	for _, name := range c.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: field interfaces: interface %q does not exist", c.Path, name))
		}
	}
	return errors.Join(errs...)
}
