package daemon

import (
	"net/netip"
	"time"

	"github.com/tknock/tknock/nft"
)

// firewall is what the daemon needs from nftables (*nft.Table in
// production, a fake that records text lines in tests). Its methods are
// called from more than one goroutine.
type firewall interface {
	// Ensure makes the kernel state match the configuration given when
	// the firewall was opened, keeping live grants.
	Ensure() error
	// Update applies a new configuration (a reload), keeping live grants;
	// on error the old one stays in force.
	Update(cfg nft.Config) error
	// Allow lets src open new connections to every endpoint of svc for
	// ttl.
	Allow(src netip.Addr, svc nft.Service, ttl time.Duration) error
	// Close releases the handle and leaves the kernel state as it is.
	Close() error
}
