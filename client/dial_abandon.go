//go:build !unix

package client

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// knockAbandon is the portable TCP knock: a dial on a goroutine that is
// given abandonAfter to get its SYN out and is then cancelled. It is used
// where no non-blocking connect is available.
func knockAbandon(ctx context.Context, dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonAfter)
	go func() {
		defer cancel()
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", dst.String()); err == nil {
			c.Close()
		}
	}()
	return nil
}

// abandonAfter bounds knockAbandon's dial.
const abandonAfter = 20 * time.Millisecond
