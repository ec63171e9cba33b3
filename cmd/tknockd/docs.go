package main

import (
	"fmt"
	"io"

	"github.com/alecthomas/kong"

	"github.com/tknock/tknock/internal/kongdoc"
	"github.com/tknock/tknock/internal/version"
)

// completionCmd is `tknockd completion SHELL`.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *completionCmd) Run(e *env) error {
	s, err := kongdoc.Script(c.Shell, "tknockd")
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(e.stdout, s)
	return err
}

// hidden answers the hidden command lines (completion requests, the man
// page) before they are parsed; handled is false for any other.
func hidden(parser *kong.Kong, args []string, stdout, stderr io.Writer) (code int, handled bool) {
	handled, err := kongdoc.Hidden(stdout, args, &kongdoc.Completer{Parser: parser}, manPage())
	if err != nil {
		fmt.Fprintf(stderr, "tknockd: %v\n", err)
		return 1, true
	}
	return 0, handled
}

func manPage() kongdoc.Page {
	return kongdoc.Page{
		Section: "8",
		Source:  "tknock " + version.Read().Module,
		Extra: []string{`.SH FILES
.TP
.I /etc/tknock/tknockd.toml
The configuration; every key is described in the example installed there.
.TP
.I /etc/tknock/users/
The enrollments, one file NAME.uri of mode 0600 per user, owned by the user tknock.
.TP
.I /usr/lib/systemd/system/tknockd.service
The systemd unit: the daemon runs as the user tknock with CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF.
.SH SIGNALS
SIGHUP reloads the configuration and the users directory (systemctl reload tknockd);
SIGTERM stops the daemon, leaving its nftables table in place.`},
		SeeAlso: []string{"tknock(1)", "nft(8)", "systemctl(1)"},
	}
}
