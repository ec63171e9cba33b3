// Command tknock is the tknock client: it knocks a server's door open for
// one service, from the user's profiles (enrollments stored in the user's
// config directory) or from an enrollment file, and can stand in as ssh's
// ProxyCommand. It needs no privilege on Linux, macOS or Windows.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the tknock command line args and returns the exit status: 0 on
// success, 1 when the command failed, 2 for a usage error. Standard input
// is os.Stdin (ssh-proxy pipes it; enroll reads "-" from it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&app{stdin: os.Stdin, stdout: stdout, stderr: stderr}).run(ctx, args)
}
