package main

import (
	"context"
	"fmt"
)

// removeCmd is `tknock remove NAME`.
type removeCmd struct {
	Name string `arg:"" help:"Profile to remove."`
}

func (c *removeCmd) Run(_ context.Context, a *app) error {
	s, err := a.store()
	if err != nil {
		return err
	}
	if err := s.Remove(c.Name); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "removed profile %s\n", c.Name)
	return nil
}
