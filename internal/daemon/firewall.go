package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/tknock/tknock/nft"
)

// firewall is what the daemon needs from nftables (*nft.Table in
// production, a fake that records text lines in tests). Its methods are
// called from more than one goroutine.
type firewall interface {
	// Apply makes the kernel state match cfg (at start and at each
	// reload), keeping live grants; on error the old state stays in force.
	Apply(cfg nft.Config) error
	// Watch keeps the state as applied (it rebuilds what someone else
	// changed or flushed) until ctx is done; an error means it cannot.
	Watch(ctx context.Context) error
	// Allow lets src open new connections to every endpoint of svc for
	// ttl.
	Allow(src netip.Addr, svc nft.Service, ttl time.Duration) error
	// Close releases the handle and leaves the kernel state as it is.
	Close() error
}
