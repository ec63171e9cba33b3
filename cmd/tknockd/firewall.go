package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
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

// nftConfig is the firewall configuration for c and its users.
func nftConfig(c *Config, users []*totpseq.Enrollment) nft.Config {
	fc := nft.Config{
		Table:      c.Firewall.Table,
		Protected:  c.Protected(),
		DropKnocks: c.Firewall.DropKnocks,
		Priority:   c.Firewall.Priority,
		External:   c.Firewall.External,

		ProtectLoopback: c.Firewall.ProtectLoopback,
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
func knockRanges(users []*totpseq.Enrollment) []nft.KnockRange {
	var knock [2][]bool // by protocol: tcp, udp; index: port
	protoIndex := func(p totpseq.Proto) int {
		if p == totpseq.UDP {
			return 1
		}
		return 0
	}
	for _, u := range users {
		i := protoIndex(u.Proto)
		if knock[i] == nil {
			knock[i] = make([]bool, 1<<16)
		}
		for p := int(u.Range.Lo); p <= int(u.Range.Hi); p++ {
			knock[i][p] = true
		}
	}
	for _, u := range users {
		for _, x := range u.Exclude {
			for i := range knock {
				if knock[i] != nil {
					knock[i][x] = false
				}
			}
		}
	}
	var out []nft.KnockRange
	for i, ports := range knock {
		proto := nft.ProtoTCP
		if i == 1 {
			proto = nft.ProtoUDP
		}
		for p := 1; p < len(ports); p++ {
			if !ports[p] {
				continue
			}
			lo := p
			for p+1 < len(ports) && ports[p+1] {
				p++
			}
			out = append(out, nft.KnockRange{Proto: proto, Lo: uint16(lo), Hi: uint16(p)})
		}
	}
	return out
}
