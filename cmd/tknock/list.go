package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// listCmd is `tknock list`.
type listCmd struct{}

func (c *listCmd) Run(_ context.Context, a *app) error {
	s, err := a.store()
	if err != nil {
		return err
	}
	ps, bad := s.List()
	if len(ps) == 0 && bad == nil {
		fmt.Fprintf(a.stderr, "no profiles in %s; add one with: tknock enroll --qr IMAGE (or --file FILE, --uri -)\n", s.Dir)
		return nil
	}
	if len(ps) > 0 {
		w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tHOST\tUSER\tSERVICES\tPROTO\tRANGE\tLEN\tPERIOD")
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Name, p.Host, p.Enrollment.Name,
				strings.Join(p.Services, ","), p.Proto, p.Range, p.Length, strconv.Itoa(p.Period)+"s")
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return bad
}
