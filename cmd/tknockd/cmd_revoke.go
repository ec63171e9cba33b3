package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/totpseq"
)

type revokeCmd struct {
	Name   string `arg:"" help:"The user to remove, with every device of theirs (NAME@DEVICE); NAME@DEVICE removes that device only."`
	Device string `placeholder:"DEVICE" help:"Remove this device of the user only (the same as revoking NAME@DEVICE)."`
}

// Run removes the user's enrollment file and those of the user's devices
// (NAME@DEVICE.uri), so revoking a person revokes all of their devices;
// revoking NAME@DEVICE removes that one. The daemon forgets them on its
// next reload; grants already given run out by themselves (open_for).
func (cmd *revokeCmd) Run(e *env) error {
	if !totpseq.ValidName(cmd.Name) {
		return fmt.Errorf("user name %q: want [A-Za-z0-9][A-Za-z0-9._@-]{0,63}", cmd.Name)
	}
	name := cmd.Name
	if cmd.Device != "" {
		var err error
		if name, err = deviceUser(cmd.Name, cmd.Device); err != nil {
			return err
		}
	}
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	paths := []string{config.UserFile(c.UsersDir, name)}
	if cmd.Device == "" && !strings.Contains(name, "@") {
		devices, err := filepath.Glob(config.UserFile(c.UsersDir, name+"@*"))
		if err != nil {
			return err
		}
		for _, p := range devices {
			if isDeviceOf(strings.TrimSuffix(filepath.Base(p), ".uri"), name) {
				paths = append(paths, p)
			}
		}
	}
	var removed []string
	for _, p := range paths {
		err := os.Remove(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		default:
			removed = append(removed, p)
			fmt.Fprintf(e.stdout, "revoked %s: removed %s\n", strings.TrimSuffix(filepath.Base(p), ".uri"), p)
		}
	}
	if len(removed) == 0 {
		return fmt.Errorf("no user %q: %s does not exist", name, paths[0])
	}
	fmt.Fprintf(e.stdout, "reload the daemon to apply (systemctl reload tknockd, or tknockd reload); open grants end within open_for (%v)\n", c.OpenFor)
	return nil
}
