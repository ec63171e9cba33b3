//go:build !linux

package main

import (
	"context"
	"errors"
)

func runSystem(ctx context.Context, o *options, t *Table, prefix string, logf func(string, ...any)) error {
	return errors.New("the system benchmarks need Linux (network namespaces, AF_PACKET, nftables)")
}
