package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/internal/kongdoc"
	"github.com/tknock/tknock/internal/version"
)

// completionCmd is `tknock completion SHELL`.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *completionCmd) Run(a *app) error {
	s, err := kongdoc.Script(c.Shell, "tknock")
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(a.stdout, s)
	return err
}

// hidden answers the hidden command lines (completion requests, the man
// page) before they are parsed; handled is false for any other.
func (a *app) hidden(parser *kong.Kong, args []string) (code int, handled bool) {
	handled, err := kongdoc.Hidden(a.stdout, args, a.completer(parser, args), manPage())
	if err != nil {
		fmt.Fprintf(a.stderr, "tknock: %v\n", err)
		return 1, true
	}
	return 0, handled
}

// completer completes tknock's command lines; words are the words being
// completed, read for a --config-dir given on them.
func (a *app) completer(parser *kong.Kong, words []string) *kongdoc.Completer {
	profiles := func(string) []string { return a.profileNames(configDirArg(words)) }
	return &kongdoc.Completer{Parser: parser, Predictors: map[string]kongdoc.Predictor{
		"knock <target>":   profiles,
		"remove <name>":    profiles,
		"ssh-proxy <host>": profiles,
		"--profile":        profiles,
	}}
}

// profileNames lists the profiles' names, and their hosts where these
// differ, for completion: unreadable profiles are left out silently.
func (a *app) profileNames(dir string) []string {
	if dir == "" {
		dir = os.Getenv("TKNOCK_CONFIG_DIR")
	}
	if dir == "" {
		var err error
		if dir, err = client.ConfigDir(); err != nil {
			return nil
		}
	}
	ps, _ := (&client.Store{Dir: dir}).List()
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		if p.Host != p.Name {
			names = append(names, p.Host)
		}
	}
	return names
}

// configDirArg returns the value of a --config-dir among words.
func configDirArg(words []string) string {
	for i, w := range words {
		if v, ok := strings.CutPrefix(w, "--config-dir="); ok {
			return v
		}
		if w == "--config-dir" && i+1 < len(words)-1 {
			return words[i+1]
		}
	}
	return ""
}

func manPage() kongdoc.Page {
	return kongdoc.Page{
		Section: "1",
		Source:  "tknock " + version.Read().Module,
		Extra: []string{`.SH FILES
.TP
.I ~/.config/tknock/
The profiles, one file of mode 0600 per server (TKNOCK_CONFIG_DIR overrides it).
.TP
.I ~/.cache/tknock/
The time windows already used (TKNOCK_CACHE_DIR overrides it).
.SH "EXIT STATUS"
0 on success, 1 when the command failed, 2 for a usage error.`},
		SeeAlso: []string{"tknockd(8)", "ssh_config(5)"},
	}
}
