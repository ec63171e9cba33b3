package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/totpseq"
)

type revokeCmd struct {
	Name string `arg:"" help:"The user to remove."`
}

// Run removes the user's enrollment file. The daemon forgets the user on
// its next reload; grants already given run out by themselves (open_for).
func (cmd *revokeCmd) Run(e *env) error {
	if !totpseq.ValidName(cmd.Name) {
		return fmt.Errorf("user name %q: want [A-Za-z0-9][A-Za-z0-9._@-]{0,63}", cmd.Name)
	}
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	path := config.UserFile(c.UsersDir, cmd.Name)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no user %q: %s does not exist", cmd.Name, path)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s: removed %s\n", cmd.Name, path)
	fmt.Fprintf(e.stdout, "reload the daemon to apply (systemctl reload tknockd, or tknockd reload); open grants end within open_for (%v)\n", c.OpenFor)
	return nil
}
