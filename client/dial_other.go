//go:build !unix && !windows

package client

import (
	"context"
	"net/netip"
)

// knockTCP is the portable abandoned dial where no non-blocking connect is
// available.
func knockTCP(ctx context.Context, dst netip.AddrPort) error { return knockAbandon(ctx, dst) }
