package main

import (
	"net/netip"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
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

// nftConfig is the firewall configuration for c and its users.
func nftConfig(c *Config, users []*totpseq.Enrollment) nft.Config {
	fc := nft.Config{
		Table:      c.Firewall.Table,
		Protected:  c.Protected(),
		DropKnocks: c.Firewall.DropKnocks,
		Priority:   c.Firewall.Priority,
		External:   c.Firewall.External,
	}
	if fc.DropKnocks {
		fc.Knocks = knockRanges(users)
	}
	return fc
}

// knockRanges returns, per protocol, the ports of every user's knock range
// except every port that any user excludes: excluded ports are where
// public services listen, and the firewall must not drop connections to
// them.
func knockRanges(users []*totpseq.Enrollment) []inet.Range {
	var rs []inet.Range
	var excluded []uint16
	for _, u := range users {
		rs = append(rs, inet.Range{Proto: u.Proto, Lo: u.Range.Lo, Hi: u.Range.Hi})
		excluded = append(excluded, u.Exclude...)
	}
	return inet.Without(rs, excluded)
}
