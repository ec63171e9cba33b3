package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tknock/tknock/internal/config"
)

type usersCmd struct{}

// Run lists the enrolled users: name, services and knock parameters, never
// the secret. Bad files are listed after the table, and make the command
// fail.
func (cmd *usersCmd) Run(e *env) error {
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	users, uerr := config.LoadUsers(c)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERVICES\tPROTO\tRANGE\tLENGTH\tPERIOD\tV6PREFIX")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%d\t%ds\t%d\n", u.Name, strings.Join(u.Services, ","),
			u.Proto, u.Range, u.Length, u.Period, u.V6Prefix)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, strconv.Itoa(len(users))+" users in "+c.UsersDir)
	return uerr
}
