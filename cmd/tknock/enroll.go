package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/totpseq"
	"golang.org/x/term"
)

// enrollCmd is `tknock enroll`: validate an enrollment and store it as a
// profile.
type enrollCmd struct {
	URI   string   `placeholder:"-" xor:"from" required:"" help:"Read the enrollment URI (otpauth://totp/...?tknock=1...) from standard input: give \"-\" and paste it. The URI holds the secret, so it is never taken from the command line, which other users see (ps, shell history)."`
	File  string   `placeholder:"FILE" xor:"from" required:"" help:"An enrollment file, as tknockd writes it (mode 0600)."`
	QR    string   `name:"qr" placeholder:"IMAGE" xor:"from" required:"" help:"A screenshot or photo of the enrollment QR code (PNG, JPEG or GIF)."`
	Name  string   `help:"Profile name (default: the host)."`
	Host  string   `help:"Host to knock at, when the enrollment has none or another name or address reaches the server from here."`
	STUN  []string `name:"stun" placeholder:"HOST:PORT" help:"STUN server for this profile (repeat for more), instead of the enrollment's stun= list: asked for the public address when this machine is behind NAT."`
	Force bool     `help:"Replace an existing profile of the same name."`
	// CheckPort overrides the enrollment's check parameter in the profile.
	CheckPort []string `name:"check-port" placeholder:"[SERVICE:]PORT" help:"TCP port that confirms the door opened for SERVICE (default service: the enrollment's first; repeat for more), instead of the one the enrollment names: when the service listens elsewhere from here (a forwarded port, say)."`
}

// setCheckPorts applies --check-port to e.
func (c *enrollCmd) setCheckPorts(e *totpseq.Enrollment) error {
	for _, s := range c.CheckPort {
		svc, port, ok := strings.Cut(s, ":")
		if !ok {
			svc, port = e.Services[0], s
		}
		cp, err := totpseq.ParseCheckPort(svc + ":tcp/" + port)
		if err != nil {
			return fmt.Errorf("--check-port %q: want [SERVICE:]PORT, such as 2222 or web:8443", s)
		}
		if err := e.SetCheck(cp); err != nil {
			return fmt.Errorf("--check-port %q: %w", s, err)
		}
	}
	return nil
}

func (c *enrollCmd) Run(_ context.Context, a *app) error {
	e, from, err := c.read(a)
	if err != nil {
		return err
	}
	if c.Host != "" {
		e.Host = c.Host
	}
	if len(c.STUN) > 0 {
		f := knockFlags{STUN: c.STUN}
		if e.STUN, err = f.stunServers(); err != nil {
			return err
		}
	}
	if err := c.setCheckPorts(e); err != nil {
		return err
	}
	if e.Host == "" {
		return fmt.Errorf("%s: the enrollment names no host to knock at: give one with --host", from)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	// Every service must give a sequence: a range that is nearly all
	// excluded can exhaust the port stream.
	now := totpseq.Window(a.time(), e.Period)
	for _, svc := range e.Services {
		for _, src := range []string{"192.0.2.1", "2001:db8::1"} {
			if _, err := totpseq.Sequence(&e.Params, svc, now, netip.MustParseAddr(src)); err != nil {
				return fmt.Errorf("%s: service %s: %w", from, svc, err)
			}
		}
	}
	name := c.Name
	if name == "" {
		if name = client.DefaultName(e); name == "" {
			return fmt.Errorf("%s: host %q makes no profile name: give one with --name", from, e.Host)
		}
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	p, err := s.Add(name, e, c.Force)
	if err != nil {
		return err
	}
	stun := ""
	if len(e.STUN) > 0 {
		stun = ", STUN " + strings.Join(e.STUN, ",")
	}
	fmt.Fprintf(a.stdout, "profile %s: user %s at %s, services %s%s; knock with: tknock %s\n",
		p.Name, e.Name, e.Host, strings.Join(e.Services, ","), stun, p.Name)
	return nil
}

// read returns the enrollment and where it came from.
func (c *enrollCmd) read(a *app) (*totpseq.Enrollment, string, error) {
	switch {
	case c.URI == "-":
		b, err := a.readURI()
		if err != nil {
			return nil, "", fmt.Errorf("standard input: %w", err)
		}
		e, err := totpseq.ParseURI(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("standard input: %w", err)
		}
		return e, "standard input", nil
	case c.URI != "":
		return nil, "", errors.New(`--uri takes "-" and reads the URI from standard input: ` +
			`a URI on the command line shows its secret to other users (ps, shell history); ` +
			`run tknock enroll --uri - and paste it, or use --file or --qr`)
	case c.File != "":
		l, err := a.readEnrollment(c.File)
		if err != nil {
			return nil, "", err
		}
		return l.Enrollment, l.from, nil
	case c.QR != "":
		text, err := client.ReadQR(c.QR)
		if err != nil {
			return nil, "", err
		}
		e, err := totpseq.ParseURI(text)
		if err != nil {
			return nil, "", fmt.Errorf("%s: the QR code holds no tknock enrollment: %w", c.QR, err)
		}
		return e, c.QR, nil
	}
	return nil, "", errors.New("give --uri, --file or --qr")
}

// readURI reads the pasted URI from standard input. On a terminal it asks
// for it and reads one line without echo (the URI holds the secret, so it
// should not stay on the screen); Enter finishes it. Otherwise it reads
// everything up to end of file (a pipe or a file).
func (a *app) readURI() ([]byte, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "Paste the enrollment URI (otpauth://totp/...), then press Enter (it is not shown): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return b, err
	}
	return io.ReadAll(io.LimitReader(a.stdin, 64<<10))
}
