//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func run(context.Context, []string, io.Writer) error {
	return errors.New("the demo needs Linux (network namespaces, nftables)")
}
