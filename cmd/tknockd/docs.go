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

// hidden runs the commands that --help does not list, asked for before
// the command line is parsed: the completion requests of the shell
// scripts, and the man page for `make package`. handled is false for any
// other command line.
func hidden(parser *kong.Kong, args []string, stdout, stderr io.Writer) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	var err error
	switch args[0] {
	case kongdoc.CompleteCommand:
		err = (&kongdoc.Completer{Parser: parser}).Run(stdout, args[1:])
	case kongdoc.ManCommand:
		err = kongdoc.Man(stdout, parser, manPage())
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(stderr, "tknockd: %v\n", err)
		return 1, true
	}
	return 0, true
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
