package config

import (
	"errors"
	"fmt"
	"net"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
)

// NFT returns the firewall configuration for c and its users (the knock
// ranges to drop come from the users; nil users give none).
func (c *Config) NFT(users []*totpseq.Enrollment) nft.Config {
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
func knockRanges(users []*totpseq.Enrollment) []inet.Range {
	var knock [2][]bool // by protocol: tcp, udp; index: port
	protoIndex := func(p inet.Proto) int {
		if p == inet.UDP {
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
	var out []inet.Range
	for i, ports := range knock {
		proto := inet.TCP
		if i == 1 {
			proto = inet.UDP
		}
		for p := 1; p < len(ports); p++ {
			if !ports[p] {
				continue
			}
			lo := p
			for p+1 < len(ports) && ports[p+1] {
				p++
			}
			out = append(out, inet.Range{Proto: proto, Lo: uint16(lo), Hi: uint16(p)})
		}
	}
	return out
}

// Tracker returns the tracker configuration of c: the listener's defaults
// with the file's settings. Now and Anchors are left for the caller.
func (c *Config) Tracker() listener.Config {
	tc := listener.DefaultConfig()
	tc.Skew = c.Skew
	tc.GapMax = c.GapMax
	tc.SeqTimeout = c.SeqTimeout
	if c.StateCapacity != 0 {
		tc.Capacity = c.StateCapacity
	}
	if c.ReplayCapacity != 0 {
		tc.ReplayCapacity = c.ReplayCapacity
	}
	tc.ReplayPerUser = c.ReplayPerUser // 0: the tracker's default
	return tc
}

// CheckInterfaces returns an error naming every configured interface that
// does not exist on this host.
func (c *Config) CheckInterfaces() error {
	var errs []error
	for _, name := range c.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: field interfaces: interface %q does not exist", c.Path, name))
		}
	}
	return errors.Join(errs...)
}
