//go:build !linux

// Command unitexec is a Linux test tool (see main_linux.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "unitexec: Linux only")
	os.Exit(2)
}
