// Command tknockd is the tknock daemon. It captures knock packets, matches
// them against the sequences of the users enrolled in its users directory,
// and opens nftables access for a source that knocked right.
//
//	tknockd run --config /etc/tknock/tknockd.toml
//	tknockd check-config --config FILE
//	tknockd enroll NAME [--service ssh] [--png FILE]
//	tknockd users | revoke NAME | status | reload
//
// The configuration file is documented in deploy/tknockd.toml.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/tknock/tknock/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// defaultConfig is where the configuration file is looked for.
const defaultConfig = "/etc/tknock/tknockd.toml"

// cli is the command line. Each command is in its own file.
type cli struct {
	Config    string `short:"c" type:"path" default:"${config}" placeholder:"FILE" help:"Configuration file (TOML). Default: ${config}."`
	LogFormat string `placeholder:"FORMAT" help:"Log format: json, console or auto (console on a terminal). Overrides log.format of the configuration."`
	LogLevel  string `placeholder:"LEVEL" help:"Log level: debug, info, warn or error. Overrides log.level of the configuration."`

	Version kong.VersionFlag `help:"Print the version (module version and VCS revision) and exit."`

	Run         runCmd         `cmd:"" help:"Run the daemon (SIGHUP reloads the configuration and the users directory)."`
	CheckConfig checkConfigCmd `cmd:"" name:"check-config" help:"Validate the configuration and the users directory, and exit."`
	Enroll      enrollCmd      `cmd:"" help:"Enroll a user: make a secret, write users/NAME.uri, show the QR code and URI to hand over."`
	Users       usersCmd       `cmd:"" help:"List the enrolled users and their services (never the secrets)."`
	Revoke      revokeCmd      `cmd:"" help:"Remove a user's enrollment file."`
	Status      statusCmd      `cmd:"" help:"Show the live grants, read from the kernel (needs CAP_NET_ADMIN)."`

	Completion completionCmd `cmd:"" help:"Print the shell completion script for bash, zsh or fish (packages install it)."`
	Reload     reloadCmd     `cmd:"" help:"Make the running daemon reload, wait for the result, and fail if the reload did (the unit's ExecReload)."`
}

// env is what every command's Run gets: the context and the output
// streams of this invocation, and the global flags.
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
	cli            *cli
}

// exitCode is how kong's Exit is turned into a return from run: kong calls
// Exit after printing help, and run must return instead of exiting.
type exitCode int

// silentError is an error already reported (logged by the daemon), which
// run must not print again.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

// run runs tknockd with the arguments args (without the program name) and
// returns the exit status: 0 on success, 1 on error, 2 for a bad command
// line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("tknockd"),
		kong.Description("tknock daemon: port knocking with HMAC-derived, source-bound, time-windowed sequences."),
		kong.Vars{"config": defaultConfig, "version": version.Read().String("tknockd")},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
	)
	if err != nil {
		fmt.Fprintf(stderr, "tknockd: %v\n", err)
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			ec, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(ec)
		}
	}()
	if code, ok := hidden(parser, args, stdout, stderr); ok {
		return code
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "tknockd: %v\n", err)
		if kctx != nil {
			fmt.Fprintln(stderr, "run tknockd --help for the commands and flags")
		}
		return 2
	}
	if err := kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr, cli: &c}); err != nil {
		var silent silentError
		if !errors.As(err, &silent) {
			fmt.Fprintf(stderr, "tknockd: %v\n", err)
		}
		return 1
	}
	return 0
}
