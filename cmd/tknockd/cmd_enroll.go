package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/enrollqr"
	"github.com/tknock/tknock/totpseq"
)

type enrollCmd struct {
	Name    string   `arg:"" help:"User name; the enrollment is written to USERS_DIR/NAME.uri (with --device: NAME@DEVICE.uri)."`
	Device  string   `placeholder:"DEVICE" help:"Enroll one more device of the user (laptop, phone): user NAME@DEVICE, with its own secret, so that two devices behind one address can knock in the same time window."`
	Service []string `short:"s" sep:"," placeholder:"NAME" help:"Service the user may open (repeat, or separate with commas); default: [enroll] services."`
	Host    string   `placeholder:"HOST" help:"What the client knocks at (DNS name or address); default: [enroll] host."`
	PNG     string   `name:"png" type:"path" placeholder:"FILE" help:"Also write the QR code to FILE as a PNG image (mode 0600: it holds the secret)."`
	Force   bool     `help:"Replace an existing enrollment of NAME with a new secret (the old one stops working on reload)."`
	NoQR    bool     `name:"no-qr" help:"Do not print the QR code on the terminal, only the URI."`
}

// Run makes a secret for a new user, writes the user's enrollment file,
// and shows the enrollment to hand over: a QR code on the terminal, the
// URI, and with --png a PNG image. This output is the one place a secret
// is shown, on purpose; it is never logged.
func (cmd *enrollCmd) Run(e *env) error {
	if !totpseq.ValidName(cmd.Name) {
		return fmt.Errorf("user name %q: want [A-Za-z0-9][A-Za-z0-9._@-]{0,63}", cmd.Name)
	}
	if cmd.Device != "" {
		name, err := deviceUser(cmd.Name, cmd.Device)
		if err != nil {
			return err
		}
		cmd.Name = name
	}
	c, err := config.Load(e.cli.Config)
	if err != nil {
		return err
	}
	p := c.Enroll.Params
	if len(cmd.Service) > 0 {
		p.Services = slices.Clone(cmd.Service)
	}
	for _, s := range p.Services {
		if _, ok := c.Services[s]; !ok {
			return fmt.Errorf("service %q is not in [services] of %s (known: %s)", s, c.Path, strings.Join(c.ServiceNames(), ", "))
		}
	}
	path := config.UserFile(c.UsersDir, cmd.Name)
	if _, err := os.Lstat(path); err == nil && !cmd.Force {
		return fmt.Errorf("user %q is enrolled already (%s): revoke it first, or give --force for a new secret", cmd.Name, path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	en, err := totpseq.NewEnrollment(cmd.Name, cmp.Or(cmd.Host, c.Enroll.Host), p, nil)
	if err != nil {
		return fmt.Errorf("enroll %s: %w", cmd.Name, err)
	}
	en.STUN = c.Enroll.STUN
	en.Check = c.CheckPorts(en.Services)
	// All or nothing: the user file is staged first, then the PNG is
	// written, and only then is the user file put in place; a failure
	// leaves neither behind.
	staged, err := stageUserFile(c.UsersDir, path, en)
	if err != nil {
		return err
	}
	defer staged.Abort() // does nothing after Commit
	uri := en.URI()
	if cmd.PNG != "" {
		if err := enrollqr.WritePNG(cmd.PNG, uri); err != nil {
			return fmt.Errorf("enroll %s: nothing was written: %w", cmd.Name, err)
		}
	}
	if err := staged.Commit(); err != nil {
		if cmd.PNG != "" {
			os.Remove(cmd.PNG)
		}
		return fmt.Errorf("enroll %s: nothing was written: %w", cmd.Name, err)
	}

	fmt.Fprintf(e.stdout, "enrolled %s for %s: %s\n", en.Name, strings.Join(en.Services, ","), path)
	if !cmd.NoQR {
		fmt.Fprintln(e.stdout)
		if err := enrollqr.WriteTerminal(e.stdout, uri, qrTerminal(e.stdout)); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	}
	fmt.Fprintln(e.stdout, uri)
	fmt.Fprintln(e.stdout)
	if cmd.PNG != "" {
		fmt.Fprintf(e.stdout, "QR code image: %s\n", cmd.PNG)
	}
	fmt.Fprintln(e.stdout, "The QR code and the URI hold the secret: hand them to the user privately (the client reads either: tknock enroll --qr IMAGE, or tknock enroll --uri - from standard input).")
	fmt.Fprintln(e.stdout, "Reload the daemon to apply: systemctl reload tknockd (or tknockd reload).")
	return nil
}

// stageUserFile writes en under a temporary name beside path, mode 0600,
// for the caller to commit. The daemon runs as its own user and reads the
// users directory, so when root enrolls, the open file is given to the
// owner of the directory before it gets its .uri name: a reload never sees
// a file it cannot read, and the directory's owner cannot make root chown
// another file.
func stageUserFile(dir, path string, en *totpseq.Enrollment) (*enrollfile.Staged, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("users directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("users directory %s: not a directory", dir)
	}
	return enrollfile.Stage(path, en, ownerOf(fi))
}

// qrTerminal reports whether w is a terminal, where the QR code gets its
// colours; tests replace it.
var qrTerminal = isTerminal
