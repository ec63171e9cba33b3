// Command demo shows tknock working, end to end, on one machine: `sudo
// make demo`. It builds a small network of three namespaces (a server, a
// client and a stranger), starts a protected service and tknockd in the
// server, and walks through a knock: the client is refused, knocks with
// tknock, gets in; the stranger is still refused; the grant expires and the
// door closes again. It prints each step, and removes everything it
// created when it ends, fails, or is interrupted (Ctrl-C).
//
//	go run ./demo [--bin DIR] [--open-for 8s]
//
// It needs root (network namespaces and nftables) and Linux.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
